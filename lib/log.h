/*
 * kamailio-ice: logging hook. lib/ never writes to stdout/stderr; the host
 * (Kamailio glue, a test, a tool) installs a sink with kice_log_set().
 */
#ifndef KICE_LOG_H
#define KICE_LOG_H

enum kice_log_level
{
	KICE_LOG_ERR = 0,
	KICE_LOG_WARN,
	KICE_LOG_INFO,
	KICE_LOG_DBG
};

typedef void (*kice_log_fn)(void *ctx, enum kice_log_level lvl, const char *msg);

/* Install the sink (NULL: discard). Not thread-safe; call at start-up. */
void kice_log_set(kice_log_fn fn, void *ctx, enum kice_log_level max);

void kice_log(enum kice_log_level lvl, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));

extern enum kice_log_level kice_log_max;

#define KICE_LOG_(lvl, ...)                \
	do {                                   \
		if((lvl) <= kice_log_max)          \
			kice_log((lvl), __VA_ARGS__);  \
	} while(0)
#define KICE_ERR(...) KICE_LOG_(KICE_LOG_ERR, __VA_ARGS__)
#define KICE_WARN(...) KICE_LOG_(KICE_LOG_WARN, __VA_ARGS__)
#define KICE_INFO(...) KICE_LOG_(KICE_LOG_INFO, __VA_ARGS__)
#define KICE_DBG(...) KICE_LOG_(KICE_LOG_DBG, __VA_ARGS__)

#endif
