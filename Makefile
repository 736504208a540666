# upesi - build, run, test.  See README.md.
#
#   make            ./upesi (the server) and plugins/<name>.so
#                   (host/upesi/ is the directory of the public header
#                   upesi/plugin.h, so the binary lives at the top: ./upesi)
#   make run        install missing packages, build, run on 127.0.0.1:2525
#   make test       install missing packages, build, run the TAP suite (prove)
#   make test SANITIZE=1   the same under AddressSanitizer + UBSan
#   make fuzz       libFuzzer targets build/fuzz/fuzz_* (clang)
#   make fuzz-smoke each fuzz target for FUZZ_SECONDS on fuzz/corpus/<target>/
#   make bench      bench/run: upesi against Postfix's smtp-sink (ratios)

CC        ?= gcc
SANITIZE  ?= 0
PKGS      := libuv wolfssl lua5.4 libcares inih lmdb hiredis libsystemd libidn2
DEB_BUILD := build-essential pkg-config libuv1-dev libwolfssl-dev libltdl-dev \
             liblua5.4-dev libc-ares-dev libinih-dev libgmime-3.0-dev \
             libcrypt-dev liblmdb-dev libhiredis-dev libsystemd-dev \
             libidn2-dev
DEB_TEST  := $(DEB_BUILD) swaks dnsmasq-base postfix openssl perl sslscan \
             libnet-ssleay-perl libio-socket-inet6-perl python3 haproxy \
             redis-server redis-tools prometheus curl
DEB_FUZZ  := clang libclang-rt-14-dev

OPT       ?= -O2
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Werror \
             -Wshadow -Wstrict-prototypes -Wmissing-prototypes -fPIC \
             -fvisibility=hidden -Ihost
ifeq ($(SANITIZE),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS    := $(CFLAGS_BASE) $(CFLAGS)
LDFLAGS   := $(LDFLAGS_SAN) $(LDFLAGS)

BUILD     := build

HOST_SRC  := $(wildcard host/*.c)
HOST_OBJ  := $(HOST_SRC:%.c=$(BUILD)/%.o)
# the host list matcher plugins compile in also decides xclient_hosts
HOST_OBJ  += $(BUILD)/plugins/common/hostmatch.o
# objects shared with unit tests and fuzz targets (everything but main)
HOST_LIB_OBJ := $(filter-out $(BUILD)/host/main.o,$(HOST_OBJ))

PLUGIN_SINGLE := $(wildcard plugins/*.c)
# plugins/common/ is no plugin: its sources (settings, host lists, DNS
# lists, the directory table) are compiled once into a static library that
# every plugin links; the linker takes only the objects a plugin uses.
COMMON_OBJ    := $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugins/common/*.c))
COMMON_LIB    := $(BUILD)/plugins/libupesi_common.a
PLUGIN_DIRS   := $(filter-out plugins/common,$(sort $(patsubst %/,%,$(dir $(wildcard plugins/*/*.c)))))
PLUGINS       := $(PLUGIN_SINGLE:.c=.so) $(addsuffix .so,$(sort $(PLUGIN_DIRS)))
# The Lua bridge lives in lua/ (with its examples) and builds to
# plugins/lua.so, linked with liblua5.4 (DESIGN.md 1, 8).
LUA_PLUGIN_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard lua/*.c))
PLUGINS       += plugins/lua.so

TEST_PLUGIN_SRC := $(wildcard plugins-test/plugins/*.c)
TEST_PLUGINS    := $(TEST_PLUGIN_SRC:.c=.so)
UNIT_SRC  := $(wildcard plugins-test/unit/*.c)
UNIT_BIN  := $(UNIT_SRC:plugins-test/unit/%.c=$(BUILD)/unit/%.t)

.PHONY: all deps deps-test deps-fuzz run test test-build clean fuzz \
        fuzz-smoke bench FORCE
all: upesi $(PLUGINS)

# Rebuild everything when the flags change (SANITIZE=1 and back).
$(BUILD)/flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@
FORCE:
# keep intermediate objects (plugin and fuzz .o): no rebuild churn
.SECONDARY:

$(BUILD)/%.o: %.c $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

upesi: $(HOST_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lltdl -lm

$(COMMON_LIB): $(COMMON_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

plugins/%.so: $(BUILD)/plugins/%.o $(COMMON_LIB)
	$(CC) $(LDFLAGS) -shared -o $@ $^

.SECONDEXPANSION:
# (a function: a literal % here would be taken by the static pattern)
plugin_dir_objs = $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c))
$(addsuffix .so,$(PLUGIN_DIRS)): %.so: $$(call plugin_dir_objs,$$*) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(PLUGIN_LIBS_$(notdir $*)) \
	  $(if $(PLUGIN_PKGS_$(notdir $*)),$(shell pkg-config --libs $(PLUGIN_PKGS_$(notdir $*))))
# A plugin folder may need more libraries: PLUGIN_PKGS_<name> names
# pkg-config packages (cflags for its objects, libs for its .so),
# PLUGIN_LIBS_<name> adds plain linker flags.
PLUGIN_PKGS_mail_rules := gmime-3.0
PLUGIN_PKGS_bayes := gmime-3.0
# bayes keeps its counts in an LMDB file of its own on a host without the
# store service
PLUGIN_LIBS_bayes := -lm
PLUGIN_PKGS_queue_forward := wolfssl
# auth checks crypt(3) hashes with libxcrypt (crypt_rn, crypt_checksalt)
PLUGIN_LIBS_auth := -lcrypt
$(foreach d,$(PLUGIN_DIRS),$(if $(PLUGIN_PKGS_$(notdir $(d))),$(eval \
  $(BUILD)/$(d)/%.o: PKG_CFLAGS += $$(shell pkg-config --cflags $(PLUGIN_PKGS_$(notdir $(d)))))))

plugins/lua.so: $(LUA_PLUGIN_OBJ) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(shell pkg-config --libs lua5.4)

plugins-test/plugins/%.so: $(BUILD)/plugins-test/plugins/%.o
	$(CC) $(LDFLAGS) -shared -o $@ $^

# A unit test links the host modules it names here (default: all but main).
UNIT_DEPS_lines       := lines
UNIT_DEPS_smtp_parse  := smtp_parse
UNIT_DEPS_data_reader := data_reader
UNIT_DEPS_stats       := stats log
UNIT_DEPS_dns         := dns dns_answer log stats
UNIT_DEPS_control     := control stats log
UNIT_DEPS_queue_spool := log durable envelope settings config_file smtp_ext
UNIT_DEPS_hostmatch   := log
# and the plugin objects it names (paths under build/plugins/, no .o)
UNIT_PLUGIN_DEPS_hostmatch := common/hostmatch
UNIT_DEPS_mime_guard  := log
UNIT_PLUGIN_DEPS_mime_guard := common/mime_guard
UNIT_DEPS_durable     := durable
UNIT_DEPS_message     := message durable
UNIT_DEPS_tls_ticket  := tls_ticket
# the bayes plugin's tokenizer, features and arithmetic, with GMime
UNIT_DEPS_bayes       := log
BAYES_UNIT_OBJ := $(patsubst %,$(BUILD)/plugins/bayes/%.o,bayes_tokenize \
                  bayes_features bayes_classify)
$(BUILD)/unit/bayes.t: $(BAYES_UNIT_OBJ)
UNIT_PLUGIN_DEPS_bayes := common/mime_guard
$(BUILD)/unit/bayes.t: PKG_LIBS += $(shell pkg-config --libs gmime-3.0)
$(BUILD)/plugins-test/unit/bayes.o: PKG_CFLAGS += $(shell pkg-config --cflags gmime-3.0)
UNIT_DEPS_plugin_loader := plugin_loader
UNIT_DEPS_store       := store store_num store_url store_lmdb store_redis store_redis_uv log stats \
                         durable simulate_state
UNIT_DEPS_store_redis := $(UNIT_DEPS_store)
unit_objs = $(if $(UNIT_DEPS_$(1)),$(patsubst %,$(BUILD)/host/%.o,$(UNIT_DEPS_$(1))),$(HOST_LIB_OBJ)) \
            $(patsubst %,$(BUILD)/plugins/%.o,$(UNIT_PLUGIN_DEPS_$(1)))
$(BUILD)/unit/%.t: $(BUILD)/plugins-test/unit/%.o $$(call unit_objs,$$*)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lltdl -lm

# -- installing what we need ---------------------------------------------
# Only packages that are missing are installed, so a machine that has them
# all never needs the network.  postfix is wanted for its smtp-source and
# smtp-sink tools alone: it is preseeded to "No configuration", so no
# main.cf is written and neither systemd nor the init script starts a
# daemon that would take port 25.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
define ensure_debs
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done | tr '\n' ' '); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  case " $$missing " in *" postfix "*) \
	    echo 'postfix postfix/main_mailer_type select No configuration' | \
	      $(SUDO) debconf-set-selections;; esac; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $$missing </dev/null; \
	fi
endef
deps:
	$(call ensure_debs,$(DEB_BUILD))
deps-test:
	$(call ensure_debs,$(DEB_TEST))
deps-fuzz:
	$(call ensure_debs,$(DEB_BUILD) $(DEB_FUZZ))

# -- the two commands ----------------------------------------------------
STATE ?= $(CURDIR)/run
# STARTTLS out of the box: unless conf/smtp.ini names a tls_cert, make run
# makes a self-signed certificate in $(STATE)/tls/ (once) and hands it to
# upesi with -o, so conf/ stays valid without it (make test, upesi -t on a
# fresh clone).  See docs/tls.md.
RUN_HAS_CERT := $(shell grep -Eqs '^[[:space:]]*tls_cert[[:space:]]*=' conf/smtp.ini && echo yes)
RUN_TLS   := $(if $(RUN_HAS_CERT),,-o tls_cert=$(STATE)/tls/cert.pem -o tls_key=$(STATE)/tls/key.pem)
run: deps
	$(call ensure_debs,openssl)
	$(MAKE) all
	@mkdir -p $(STATE)/spool
	@if [ -z "$(RUN_HAS_CERT)" ] && [ ! -s $(STATE)/tls/cert.pem ]; then \
	  mkdir -p $(STATE)/tls && chmod 700 $(STATE)/tls && \
	  cn=$$(sed -n 's/^[[:space:]]*hostname[[:space:]]*=[[:space:]]*//p' conf/smtp.ini); \
	  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -sha256 \
	    -subj "/CN=$${cn:-localhost}" \
	    -addext "subjectAltName=DNS:$${cn:-localhost},DNS:localhost,IP:127.0.0.1" \
	    -keyout $(STATE)/tls/key.pem -out $(STATE)/tls/cert.pem 2>/dev/null && \
	  echo "make run: self-signed certificate for $${cn:-localhost} in $(STATE)/tls/"; \
	fi
	./upesi -c conf $(RUN_TLS)

# prove runs the unit test binaries directly (its Executable source handler
# takes ELF files) and the end-to-end tests with perl.
PROVE_JOBS ?= 2
PROVE     ?= prove
TESTS     ?= $(UNIT_BIN) $(wildcard plugins-test/e2e/*.t)
ifeq ($(SANITIZE),1)
# Every report ends the process with an error; the e2e helpers also grep
# the server's log for reports.  Leak suppressions: plugins-test/lsan.supp.
export ASAN_OPTIONS := halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
export UBSAN_OPTIONS := halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS := suppressions=$(CURDIR)/plugins-test/lsan.supp:print_suppressions=0
endif
test: deps-test
	$(MAKE) test-build
	$(PROVE) -j$(PROVE_JOBS) --timer -Iplugins-test/lib $(TESTS)

test-build: all $(TEST_PLUGINS) $(UNIT_BIN)

# The key reference in docs/config.md, from the settings tables
# (plugins-test/e2e/config_doc.t checks that the page is current).
.PHONY: docs-config
docs-config: all
	tools/settings-doc ./upesi plugins docs/config.md

# -- fuzzing (clang + libFuzzer) -----------------------------------------
# Each fuzz/fuzz_<x>.c links the host modules FUZZ_DEPS_<x> names, compiled
# again with clang and coverage instrumentation into build/fuzz/.
FUZZ_CC     ?= clang
FUZZ_SECONDS ?= 30
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror \
               -fno-omit-frame-pointer -Ihost $(FUZZ_SAN)
FUZZ_SRC    := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN    := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_DEPS_fuzz_lines       := lines
FUZZ_DEPS_fuzz_smtp_parse  := smtp_parse
FUZZ_DEPS_fuzz_smtp_ext    := smtp_ext smtp_parse
FUZZ_DEPS_fuzz_data_reader := data_reader
FUZZ_DEPS_fuzz_dns_answer  := dns_answer
FUZZ_DEPS_fuzz_proxy       := proxy
FUZZ_DEPS_fuzz_metrics     := metrics stats log
FUZZ_DEPS_fuzz_config      := config config_file config_smtp config_plugins \
                              settings log dns dns_answer stats tls \
                              tls_ticket tls_cache store_url smtp_ext
FUZZ_DEPS_fuzz_store       := store_url store_num
FUZZ_DEPS_fuzz_settings    := settings
FUZZ_DEPS_fuzz_xclient     := xclient_parse smtp_ext smtp_parse
# plugin sources a target links (paths under plugins/, without .c)
FUZZ_PLUGIN_DEPS_fuzz_hostmatch := common/hostmatch
FUZZ_PLUGIN_DEPS_fuzz_config := common/hostmatch
FUZZ_PLUGIN_DEPS_fuzz_dnslist   := common/dnslist common/settings
FUZZ_PLUGIN_DEPS_fuzz_directory := common/dir_table
FUZZ_PLUGIN_DEPS_fuzz_rules     := mail_rules/rules
FUZZ_PLUGIN_DEPS_fuzz_mime      := mail_rules/rules mail_rules/mime common/mime_guard
FUZZ_PLUGIN_DEPS_fuzz_mime_guard := common/mime_guard
FUZZ_PLUGIN_DEPS_fuzz_limit_rule  := limit/limit_rule
FUZZ_PLUGIN_DEPS_fuzz_karma_score := karma/karma_table
# the mail_rules objects and the targets that link them need GMime (glib)
$(BUILD)/fuzz/plugins/mail_rules/%.o: PKG_CFLAGS += $(shell pkg-config --cflags gmime-3.0)
$(BUILD)/fuzz/fuzz_rules: PKG_CFLAGS += $(shell pkg-config --cflags gmime-3.0)
$(BUILD)/fuzz/fuzz_rules: PKG_LIBS += $(shell pkg-config --libs gmime-3.0)
$(BUILD)/fuzz/fuzz_mime: PKG_CFLAGS += $(shell pkg-config --cflags gmime-3.0)
$(BUILD)/fuzz/fuzz_mime: PKG_LIBS += $(shell pkg-config --libs gmime-3.0)
FUZZ_PLUGIN_DEPS_fuzz_bayes_tokenize := bayes/bayes_tokenize bayes/bayes_features common/mime_guard
$(BUILD)/fuzz/fuzz_bayes_tokenize $(BUILD)/fuzz/plugins/bayes/%.o: PKG_CFLAGS += $(shell pkg-config --cflags gmime-3.0)
$(BUILD)/fuzz/fuzz_bayes_tokenize: PKG_LIBS += $(shell pkg-config --libs gmime-3.0)
fuzz_objs = $(patsubst %,$(BUILD)/fuzz/host/%.o,$(FUZZ_DEPS_$(1))) \
            $(patsubst %,$(BUILD)/fuzz/plugins/%.o,$(FUZZ_PLUGIN_DEPS_$(1)))

$(BUILD)/fuzz/host/%.o: host/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/fuzz/plugins/%.o: plugins/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/fuzz/%: fuzz/%.c $$(call fuzz_objs,$$*)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $^ $(PKG_LIBS) -lm

fuzz: deps-fuzz
	$(MAKE) $(FUZZ_BIN)

# libFuzzer writes new inputs to its first corpus dir: a scratch copy, so
# the corpus in git only changes when someone merges on purpose.
fuzz-smoke: fuzz
	@set -e; for t in $(notdir $(FUZZ_BIN)); do \
	  mkdir -p $(BUILD)/fuzz/work/$$t fuzz/corpus/$$t; \
	  echo "== $$t: $(FUZZ_SECONDS) s"; \
	  $(BUILD)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -print_final_stats=1 $(BUILD)/fuzz/work/$$t fuzz/corpus/$$t \
	    2>$(BUILD)/fuzz/$$t.log || { tail -n 60 $(BUILD)/fuzz/$$t.log; exit 1; }; \
	  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' $(BUILD)/fuzz/$$t.log || true; \
	done

# -- measuring (figures are ratios; see bench/README.md) -------------------
bench: deps-test
	$(MAKE) all
	bench/run

# -- installing upesi (issue: third-party plugins) ------------------------
# make install PREFIX=/usr DESTDIR=/tmp/pkg: the server, the in-tree
# plugins, the SDK (header + upesi.pc), the default configuration (never
# over an existing file), the man page, the docs and a systemd unit.
# install-files copies what is built without building (tests use it so
# that they never rebuild the tree under a running suite).
PREFIX        ?= /usr/local
ifeq ($(PREFIX),/usr)
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
else
SYSCONFDIR    ?= $(PREFIX)/etc
LOCALSTATEDIR ?= $(PREFIX)/var
endif
RUNSTATEDIR   ?= /run
LIBDIR        ?= $(PREFIX)/lib
PLUGINDIR     ?= $(LIBDIR)/upesi/plugins
CONFDIR       ?= $(SYSCONFDIR)/upesi
SPOOLDIR      ?= $(LOCALSTATEDIR)/spool/upesi
SYSTEMDDIR    ?= $(LIBDIR)/systemd/system
SYSUSERSDIR   ?= $(LIBDIR)/sysusers.d
ABI_VERSION    = $(shell sed -n 's/^\#define UPESI_ABI_MAJOR \([0-9]*\).*/\1/p' host/upesi/plugin.h).$(shell sed -n 's/^\#define UPESI_ABI_MINOR \([0-9]*\).*/\1/p' host/upesi/plugin.h)
VERSION        = $(shell sed -n 's/^\#define UPESI_VERSION "\(.*\)"/\1/p' host/version.h)
INSTALL_SED    = -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@PLUGINDIR@|$(PLUGINDIR)|g' \
                 -e 's|@CONFDIR@|$(CONFDIR)|g' -e 's|@SPOOLDIR@|$(SPOOLDIR)|g' \
                 -e 's|@RUNDIR@|$(RUNSTATEDIR)/upesi|g' -e 's|@VERSION@|$(VERSION)|g' \
                 -e 's|@ABI@|$(ABI_VERSION)|g'
D := $(DESTDIR)

.PHONY: install install-files
install: all
	$(MAKE) install-files
	@# the upesi account, on a real install only (a DESTDIR build is a
	@# package: its postinst runs systemd-sysusers)
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
	  systemd-sysusers $(SYSUSERSDIR)/upesi.conf; \
	else echo "create the upesi account: systemd-sysusers $(SYSUSERSDIR)/upesi.conf"; fi

install-files:
	install -d $(D)$(PREFIX)/sbin $(D)$(PLUGINDIR) $(D)$(PREFIX)/include/upesi \
	  $(D)$(LIBDIR)/pkgconfig $(D)$(CONFDIR) $(D)$(PREFIX)/share/man/man8 \
	  $(D)$(PREFIX)/share/doc/upesi $(D)$(SYSTEMDDIR) $(D)$(SYSUSERSDIR) \
	  $(D)$(PREFIX)/share/upesi
	install -m 0755 upesi $(D)$(PREFIX)/sbin/upesi
	install -m 0755 $(PLUGINS) $(D)$(PLUGINDIR)/
	install -m 0644 host/upesi/plugin.h $(D)$(PREFIX)/include/upesi/plugin.h
	sed $(INSTALL_SED) dist/upesi.pc.in > $(D)$(LIBDIR)/pkgconfig/upesi.pc
	sed $(INSTALL_SED) dist/upesi.service.in > $(D)$(SYSTEMDDIR)/upesi.service
	sed $(INSTALL_SED) dist/upesi.sysusers > $(D)$(SYSUSERSDIR)/upesi.conf
	install -m 0644 dist/grafana-upesi.json $(D)$(PREFIX)/share/upesi/grafana-upesi.json
	install -m 0644 docs/upesi.8 $(D)$(PREFIX)/share/man/man8/upesi.8
	install -m 0644 README.md docs/*.md $(D)$(PREFIX)/share/doc/upesi/
	@# the configuration: an admin's files are never overwritten
	@set -e; cd conf && find . -type f | while read -r f; do \
	  dst="$(D)$(CONFDIR)/$$f"; \
	  if [ -e "$$dst" ]; then echo "keeping $$dst"; continue; fi; \
	  install -d "$$(dirname "$$dst")"; \
	  if [ "$$f" = ./smtp.ini ]; then \
	    sed -e 's|^spool_dir *=.*|spool_dir = $(SPOOLDIR)|' \
	        -e 's|^control_socket *=.*|control_socket = $(RUNSTATEDIR)/upesi/upesi.sock|' \
	        -e 's|^plugin_dir *=.*|plugin_dir = $(PLUGINDIR)|' "$$f" > "$$dst"; \
	    chmod 0644 "$$dst"; \
	  else install -m 0644 "$$f" "$$dst"; fi; \
	done

clean:
	rm -rf $(BUILD) upesi plugins/*.so plugins/*/*.so plugins-test/plugins/*.so

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
