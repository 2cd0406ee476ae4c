# kamailio-ice: Debian package, module documentation and example configs
# (GitHub issue 7). Included by the top-level Makefile (-include mk/*.mk),
# so KAMAILIO_SRC, MODULE and PYTHON come from there.
#
#   make deb        kamailio-ice-module_*.deb in build/deb/ (dpkg-buildpackage -b)
#   make deb-test   build, lintian, install, run Debian's kamailio + sipp, remove
#   make doc        modules/ice/README from modules/ice/doc/ice.xml
#   make doc-test   every export documented, README up to date, DocBook valid
#   make cfg-test   kamailio -c on the example configs in etc/

KAM_MODDIR := /usr/lib/$(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/kamailio/modules

.PHONY: deb deb-test doc doc-test cfg-test

deb: | build/.deps
	KAMAILIO_SRC=$(KAMAILIO_SRC) sh scripts/build-deb.sh

deb-test: | build/.deps
	KAMAILIO_SRC=$(KAMAILIO_SRC) bash test/deb/deb-test.sh

# always rendered: file times say little after a git checkout
doc: | build/.deps
	sh scripts/render-doc.sh modules/ice/doc/ice.xml > modules/ice/README.tmp
	mv modules/ice/README.tmp modules/ice/README

doc-test: | build/.deps
	$(PYTHON) test/doc/check_docs.py

# The production example loads websocket.so (kamailio-websocket-modules);
# with WITH_TLS also tls.so (kamailio-tls-modules).
cfg-test: $(MODULE)
	@set -e; for cfg in etc/kamailio-ice-production.cfg etc/kamailio-ice.cfg; do \
		for def in "" "-A WITH_TLS"; do \
			[ "$$cfg" = etc/kamailio-ice.cfg ] && [ -n "$$def" ] && continue; \
			echo "== kamailio -c -f $$cfg $$def"; \
			kamailio -c -f $$cfg $$def -L $(KAM_MODDIR):$(CURDIR)/modules >build/cfg-test.log 2>&1 \
				|| { cat build/cfg-test.log; echo "cfg-test: $$cfg $$def: FAILED"; exit 1; }; \
			grep -h "config file ok" build/cfg-test.log; \
		done; \
	done
