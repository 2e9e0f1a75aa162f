// Package server is benchtop's HTTP front end: the configured service APIs
// (POST /{api}), the Open Inference Protocol (KServe v2), health, metrics and
// an OpenAPI document, all over the engine's public API.
package server
