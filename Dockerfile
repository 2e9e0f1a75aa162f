# benchtop with the ONNX Runtime library, for `benchtop deploy kubernetes`
# (docs/KUBERNETES.md). Two stages: Go and npm build the binary and fetch the
# pinned, checksummed library; the image that runs them has neither a shell
# nor a package manager, and runs as a non-root user (65532, as the
# manifests' runAsUser says).
#
#   docker build -t registry.example/benchtop:0.4 .
#
# Python worker processes (process: runners) need a python3 in the image:
# build FROM this one, or use a base with python3, and copy your worker in.

FROM golang:1.26-bookworm AS build
RUN apt-get update \
	&& apt-get install -y --no-install-recommends npm \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_CFLAGS="-O2 -g -Wno-deprecated-declarations"
RUN scripts/install-onnxruntime.sh /out/lib \
	&& go build -trimpath -o /out/benchtop . \
	&& mkdir -p /out/home/models

# cc: glibc and libstdc++, which the ONNX Runtime library links against.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/benchtop /usr/local/bin/benchtop
COPY --from=build /out/lib/libonnxruntime.so.1 /usr/local/lib/benchtop/libonnxruntime.so.1
# The model store: copy models in here (COPY models/ /var/lib/benchtop/models/)
# for model: runners; benchtop models export/import move them.
COPY --from=build --chown=65532:65532 /out/home /var/lib/benchtop
ENV BENCHTOP_ONNXRUNTIME_LIB=/usr/local/lib/benchtop/libonnxruntime.so.1 \
	BENCHTOP_HOME=/var/lib/benchtop
USER 65532:65532
EXPOSE 3000 3001
ENTRYPOINT ["/usr/local/bin/benchtop"]
CMD ["serve", "--host", "0.0.0.0"]
