# kamailio-ice top-level Makefile. `make` builds, `make test` tests,
# `make run` starts Kamailio with etc/kamailio-ice.cfg. See README.md.

KAMAILIO_SRC ?= $(CURDIR)/build/kamailio
COREPATH := $(KAMAILIO_SRC)/src
CC ?= gcc
PYTHON := /usr/bin/python3

LIB_SRCS := $(sort $(wildcard lib/*.c))
LIB_HDRS := $(wildcard lib/*.h)
LIB_OBJS := $(patsubst lib/%.c,build/lib/%.o,$(LIB_SRCS))
LIB_CFLAGS := -std=gnu11 -D_GNU_SOURCE -O2 -g -fPIC -fvisibility=hidden \
	-Wall -Wextra -Werror $(shell pkg-config --cflags libsrtp2 openssl 2>/dev/null)
TEST_LIBS := -lcmocka -lssl -lcrypto -lsrtp2 -luring -lpthread
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))
UNIT_BINS := $(patsubst test/unit/%.c,build/unit/%,$(UNIT_SRCS))
UNIT_ASAN := $(patsubst test/unit/%.c,build/unit-asan/%,$(UNIT_SRCS))
FUZZ_SRCS := $(sort $(wildcard test/fuzz/fuzz_*.c))
FUZZ_BINS := $(patsubst test/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))
FUZZ_TIME ?= 600
FUZZ_SHORT ?= 20

MODULE := modules/ice/ice.so

.PHONY: all deps lib module unit unit-asan fuzz-build fuzz fuzz-short \
	integration test run clean distclean

all: module

deps: build/.deps
build/.deps: scripts/deps.sh
	sh scripts/deps.sh
	mkdir -p build && touch $@

$(COREPATH)/config.mak: | build/.deps
	sh scripts/kamailio-src.sh $(KAMAILIO_SRC)

build/lib/%.o: lib/%.c $(LIB_HDRS) | build/.deps
	@mkdir -p build/lib
	$(CC) $(LIB_CFLAGS) -c $< -o $@

build/lib/libkice.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

lib: build/lib/libkice.a

module: $(MODULE)
$(MODULE): build/lib/libkice.a $(wildcard modules/ice/*.c modules/ice/*.h) \
		$(COREPATH)/config.mak
	$(MAKE) -C modules/ice COREPATH=$(COREPATH) quiet=silent
	@strings -a $@ | grep -q "^$$(kamailio -v | sed -n 's/^version: //p' | sed 's/ *$$//')" \
		|| { echo "ice.so: version string does not match kamailio -v"; exit 1; }
	@printf '#!KAMAILIO\nloadmodule "%s"\nrequest_route { exit; }\n' $(CURDIR)/$@ > build/modcheck.cfg
	@kamailio -c -f build/modcheck.cfg >build/modcheck.log 2>&1 \
		|| { cat build/modcheck.log; echo "ice.so: Debian's kamailio cannot load it"; rm -f $@; exit 1; }

build/unit/%: test/unit/%.c $(LIB_SRCS) $(LIB_HDRS) | build/.deps
	@mkdir -p build/unit
	$(CC) -std=gnu11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Ilib $< $(LIB_SRCS) $(TEST_LIBS) -o $@

build/unit-asan/%: test/unit/%.c $(LIB_SRCS) $(LIB_HDRS) | build/.deps
	@mkdir -p build/unit-asan
	$(CC) -std=gnu11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror $(SAN) -Ilib $< $(LIB_SRCS) $(TEST_LIBS) -o $@

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

unit-asan: $(UNIT_ASAN)
	@set -e; for t in $(UNIT_ASAN); do echo "== $$t (asan+ubsan)"; \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

build/fuzz/%: test/fuzz/%.c $(LIB_SRCS) $(LIB_HDRS) | build/.deps
	@mkdir -p build/fuzz
	clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ilib $< $(LIB_SRCS) -lssl -lcrypto -lsrtp2 -luring -lpthread -o $@

fuzz-build: $(FUZZ_BINS)

# FUZZ_SECS per target; corpus in test/fuzz/corpus/<name>, new inputs in build/fuzz/corpus
define run_fuzz
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f | sed 's/^fuzz_//'); \
		mkdir -p build/fuzz/corpus/$$n; echo "== $$f ($(1) s)"; \
		$$f -max_total_time=$(1) -print_final_stats=1 build/fuzz/corpus/$$n test/fuzz/corpus/$$n 2>&1 \
		| grep -E "stat::number_of_executed_units|ERROR|SUMMARY|crash" ; \
		test $${PIPESTATUS[0]} -eq 0; done
endef

fuzz-short: SHELL := /bin/bash
fuzz-short: fuzz-build
	$(call run_fuzz,$(FUZZ_SHORT))

fuzz: SHELL := /bin/bash
fuzz: fuzz-build
	$(call run_fuzz,$(FUZZ_TIME))

integration: module
	ICE_SO=$(CURDIR)/$(MODULE) bash test/integration/run.sh

test: module
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) fuzz-short
	$(MAKE) integration
	$(MAKE) doc-test cfg-test
	$(MAKE) deb-test

run: module
	@mkdir -p build/run
	kamailio -f etc/kamailio-ice.cfg -DD -E -Y $(CURDIR)/build/run -w $(CURDIR)/build/run \
		-L /usr/lib/x86_64-linux-gnu/kamailio/modules:$(CURDIR)/modules

clean:
	rm -rf build/lib build/unit build/unit-asan build/fuzz
	-$(MAKE) -C modules/ice COREPATH=$(COREPATH) clean >/dev/null 2>&1
	rm -f modules/ice/*.o modules/ice/*.d $(MODULE)

distclean: clean
	rm -rf build

-include mk/*.mk
