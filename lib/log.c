/*
 * kamailio-ice: logging hook (see log.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static kice_log_fn sink;
static void *sink_ctx;
enum kice_log_level kice_log_max = KICE_LOG_ERR;

void kice_log_set(kice_log_fn fn, void *ctx, enum kice_log_level max)
{
	sink = fn;
	sink_ctx = ctx;
	kice_log_max = max;
}

void kice_log(enum kice_log_level lvl, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if(sink == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sink(sink_ctx, lvl, buf);
}
