# image-policy: the two commands that matter are `make up` and `make test` (README.md).
SHELL := /usr/bin/env bash
CARGO ?= cargo
CRD_FILE := charts/image-policy-webhook/crds/clusterimagepolicies.signing.apps.tanzu.vmware.com.yaml

.PHONY: test test-phases deps k8s lint unit chart e2e crd bench bench-load up down fuzz fuzz-cmin fuzz-replay

## Everything CI runs (.ci/run, which times each phase): formatting, lints, unit tests, the
## chart, then the suite against a real API server.
TEST_PHASES := deps k8s sigstore lint unit chart e2e
test: $(TEST_PHASES)

## The phases of `make test`, in order: what .ci/run runs and times one by one.
test-phases:
	@echo $(TEST_PHASES)

## What the build needs on a fresh Debian machine (a C compiler for aws-lc).
deps:
	hack/install-deps.sh

## The control plane of the e2e suite and `make up`: kube-apiserver, kube-controller-manager,
## kubectl and etcd built from Go modules (hack/k8s/go.mod), cached outside the checkout.
k8s:
	hack/k8s-build.sh >/dev/null

## The real Sigstore tools the registry and e2e tests sign with and run: cosign, Rekor v2, the
## timestamp authority and olareg (a registry with the referrers API), built from Go modules
## (hack/sigstore/go.mod), cached outside the checkout. Its own target (and CI phase), so that
## the time of a cold build shows; the tests build what is missing themselves when run alone.
.PHONY: sigstore
sigstore:
	hack/sigstore/install.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Includes image-policy-fuzzing's tests, which replay the committed fuzz corpora and past
## findings (fuzz-replay) without libFuzzer.
unit:
	$(CARGO) test --workspace --locked --exclude image-policy-e2e

## Coverage-guided fuzzing (fuzz/README.md): every target for FUZZ_SECONDS (default 180), one
## after the other, 1 s and 512 MiB per input; a crash fails it. `make fuzz FUZZ_TARGETS=bundle`
## runs one.
FUZZ_SECONDS ?= 180
export FUZZ_SECONDS
fuzz:
	fuzz/run.sh run $(FUZZ_TARGETS)

## Merges what fuzzing found into the committed, minimised fuzz/corpus/ (small files only).
fuzz-cmin:
	fuzz/run.sh cmin $(FUZZ_TARGETS)

## The committed corpora and the inputs of past findings through the targets' bodies, as
## ordinary tests (part of unit).
fuzz-replay:
	$(CARGO) test --locked -p image-policy-fuzzing

## The Helm chart through Helm v4's own Go SDK (PyPI's helm-python-sdk): lint, render, schema.
chart:
	hack/helm/test-chart.sh

## The end-to-end suite: a real kube-apiserver and the kubectl of its release (make k8s).
e2e:
	hack/e2e.sh

## Regenerate the checked-in CRD from the Rust types.
crd:
	$(CARGO) run --quiet --locked -p image-policy -- crd > $(CRD_FILE)

## The policy engine's hot path (criterion); see README.md for the figures.
bench:
	$(CARGO) bench --locked -p image-policy --bench snapshot_match

## The cost of an admission as deployed (hack/bench.sh installs wrk and valgrind): server CPU
## per request under wrk beside a bare server, then instructions and allocations per cached
## review under callgrind. `make bench-load BENCH=callgrind` prints the second table alone.
bench-load:
	hack/bench.sh $(BENCH)

## A local control plane with the operator as its webhook and demo images: prints what to
## export and the seed's three checks.
up:
	hack/up.sh

down:
	hack/down.sh
