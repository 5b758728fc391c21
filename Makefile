# The two front-door commands: `make demo` (the whole job on the built-in lab)
# and `make test` (every test and lint). Each installs what it needs first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

# Debian packages the lab, the render checks and the tests run for real.
APT_PACKAGES := hostapd dnsmasq nginx-light chrony nftables iproute2 iputils-ping \
	udhcpc isc-dhcp-client ntpsec-ntpdate apache2-utils openssl debootstrap \
	systemd-container chromium chromium-driver ffmpeg iw rfkill git \
	ulogd2 ulogd2-json fail2ban wireguard-tools wireguard-go zbar-tools vsftpd libpam-pwdfile

.PHONY: help deps system-deps venv demo test lint e2e bench clean lab-down screenshot fuzz

help:
	@echo "make demo   - build the lab, install onto it, check every camera"
	@echo "make test   - lint and run every test (unit, namespace, lab end-to-end, browser)"
	@echo "make lint   - ruff, yamllint, ansible-lint, syntax-check only"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make screenshot - refresh docs/dashboard.png (the README's picture) from the browser test"
	@echo "make fuzz   - the property tests randomized and 20x longer, to find new bugs"

deps: system-deps venv

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: deps
	$(BIN)/presence-appliance lab up
	$(BIN)/presence-appliance install -i lab/inventory.yml
	$(BIN)/presence-appliance lab info

lab-down: venv
	$(BIN)/presence-appliance lab down

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint -s .
	cd $(CURDIR) && $(BIN)/ansible-lint --profile production playbooks roles
	ANSIBLE_ROLES_PATH=roles $(BIN)/ansible-playbook --syntax-check -i inventory.example.yml playbooks/site.yml playbooks/rollback.yml playbooks/uninstall.yml

# Two pytest sessions at once: the lab's end-to-end tests (mostly waiting on the booted Pi)
# and every other test (their own namespaces and ranges, never the lab's), whose output is
# printed when they end. Together they take about the lab's time instead of the sum.
# Fails when either fails, or when the tests changed what `git status` shows (they write
# only to git-ignored places: test-artifacts/, the lab's directories, caches).
NOT_LAB_LOG := test-artifacts/pytest-not-lab.log
test: deps lint
	@before=$$(git status --porcelain 2>/dev/null); \
	mkdir -p test-artifacts; rm -f $(NOT_LAB_LOG).rc; \
	echo "make test: the tests without the lab run alongside, output in $(NOT_LAB_LOG)"; \
	( $(BIN)/pytest -m "not lab" -p no:cacheprovider --durations=15 > $(NOT_LAB_LOG) 2>&1; \
	  echo $$? > $(NOT_LAB_LOG).rc; \
	  echo "make test: the tests without the lab are done:"; tail -n 3 $(NOT_LAB_LOG) ) & \
	others=$$!; trap 'pkill -P $$others 2>/dev/null; kill $$others 2>/dev/null' EXIT; \
	$(BIN)/pytest -m lab --durations=25; lab=$$?; \
	wait $$others; trap - EXIT; \
	echo; echo "=== make test: the tests without the lab ($(NOT_LAB_LOG)) ==="; \
	cat $(NOT_LAB_LOG); not_lab=$$(cat $(NOT_LAB_LOG).rc 2>/dev/null || echo 1); \
	echo "make test: lab tests exit $$lab, the others exit $$not_lab"; \
	after=$$(git status --porcelain 2>/dev/null); \
	if [ "$$before" != "$$after" ]; then \
	  echo "make test: the tests changed the working tree (git status):"; \
	  diff <(echo "$$before") <(echo "$$after"); exit 1; \
	fi; \
	[ "$$lab" = 0 ] && [ "$$not_lab" = 0 ]

# Refresh the README's picture of the dashboard (a deliberate step: the tests never touch docs/).
screenshot: deps
	$(BIN)/pytest tests/web/test_web_browser.py -k "test_dashboard_plays_live_video and auto"
	cp test-artifacts/dashboard-auto.png docs/dashboard.png

# Random draws (not CI's fixed seed), 20x the examples: keep what it finds as @example cases.
fuzz: deps
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -m property

bench: deps
	$(BIN)/python bench/proxy_bench.py
	$(BIN)/python bench/check_bench.py
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/emulator_bench.py
	$(BIN)/python bench/install_bench.py

clean:
	rm -rf $(VENV) build dist *.egg-info
