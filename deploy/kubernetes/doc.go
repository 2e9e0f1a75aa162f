// Package kubernetes turns a benchtop config into Kubernetes manifests:
// runner servers (`benchtop serve --runners NAME`) as a Deployment and a
// headless Service per runner, scaled on their queue depth, and an API front
// end whose config calls every runner remotely. The objects are the typed
// k8s.io/api ones, serialised with sigs.k8s.io/yaml; what they are for is in
// docs/KUBERNETES.md. Nothing here talks to a cluster.
package kubernetes
