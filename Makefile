# benchtop — the two commands a new machine needs are `make run` and `make test`.
export PATH := /usr/local/go/bin:$(PATH)
# go-nvml's header marks calls NVML 13 deprecated; they are gated at run time.
export CGO_CFLAGS := -O2 -g -Wno-deprecated-declarations
GO      ?= go
BIN     := bin/benchtop

.PHONY: all build install run test vet unit e2e bench clean onnxruntime proto

all: build

build:
	$(GO) build -o $(BIN) .

# Link ./bin/benchtop into BINDIR, so that the README's `benchtop …`
# commands run as written: by default Go's own bin folder ($GOBIN, else
# $GOPATH/bin, ~/go/bin); `make install BINDIR=~/.local/bin` puts it
# elsewhere. A link, not a copy: it follows `make build`, and the binary
# finds ONNX Runtime in this checkout's .cache/ through it. It says where,
# and whether that folder is on PATH. The sample config's Python worker is
# named relative to the repository root: run the workbench from there.
BINDIR  ?= $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)

install: onnxruntime build
	@mkdir -p "$(BINDIR)"
	ln -sfn "$(CURDIR)/$(BIN)" "$(BINDIR)/benchtop"
	@echo "installed $(BINDIR)/benchtop → $(CURDIR)/$(BIN)"
	@case ":$$PATH:" in *":$(BINDIR):"*) ;; *) echo "$(BINDIR) is not on your PATH: add it (export PATH=\"$(BINDIR):\$$PATH\"), or run ./bin/benchtop";; esac

# ONNX Runtime's shared library, from the npm registry, checksum verified,
# into .cache/onnxruntime (a no-op once there).
onnxruntime:
	scripts/install-onnxruntime.sh

# Regenerate the gRPC stubs in engine/v2pb after editing inference.proto
# (needs protoc: apt-get install protobuf-compiler). The generated code is
# committed: building and testing never need this.
proto:
	scripts/proto.sh

# Open the workbench (also serving http://127.0.0.1:3000) on your copy of
# the sample config, made on first run in your config folder
# ($XDG_CONFIG_HOME/benchtop/benchtop.yaml, by default ~/.config/benchtop/),
# where `w` saves tweaks. `./bin/benchtop serve` runs the embedded sample
# headless.
run: onnxruntime build
	./$(BIN)

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# CI=true: a test that needs something installed apart from the Go modules
# (ONNX Runtime, python3) fails without it instead of skipping; a plain
# `go test ./...` skips it and says how to install it.
unit: onnxruntime
	CI=true $(GO) test -race -count=1 ./...

# End-to-end: the real binary (race-enabled) driven over real sockets.
e2e: onnxruntime
	$(GO) build -race -o bin/benchtop-race .
	scripts/e2e-serve.sh bin/benchtop-race
	scripts/e2e-overload.sh bin/benchtop-race
	scripts/e2e-grpc.sh bin/benchtop-race
	scripts/e2e-scaleout.sh bin/benchtop-race
	scripts/e2e-tui.sh bin/benchtop-race

# Everything that must pass.
test: vet unit e2e

# Benchmarks are measurements, not part of `make test`: `make bench` writes
# docs/PERFORMANCE.md, each go test benchmark run BENCH_COUNT times (default
# 5) and reported as median [min–max]; SOAK_SECONDS (default 600) sets the
# memory soak. A benchmark that fails fails it and leaves the report as it was.
bench: onnxruntime
	scripts/bench.sh

clean:
	rm -rf bin
