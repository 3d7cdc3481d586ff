// Package injector is Cloister's mutating admission webhook for Kubernetes (`cloister
// injector`). Pods labelled cloister.dev/workload: NAME get what the launcher in a
// confidential container needs: the CLOISTER_* environment (the Coordinator's workload API,
// the workload name, the pod's UID as instance ID through the downward API, the TEE), the SGX
// device plugin's resources and tolerations, and the DNS names of the pod's Services that the
// manifest allows for its workload certificate. In simulation the simulated platform is
// mounted as well.
//
// # Fail closed
//
// Before it changes a pod, the webhook asks the Coordinator (verified by its quote with package
// client, the manifest cached for [Config.ManifestTTL]) whether the workload exists. A workload
// the manifest lacks, or a Coordinator that cannot be reached or verified, denies the pod: a
// labelled pod is never admitted without its protection. Unlabelled pods are never changed.
//
// # Idempotent
//
// The patch is computed as the difference between the pod and the pod as it must be, so a pod
// that was already injected (re-admission, reinvocation, a second webhook's patch on top) gets
// an empty patch.
//
// # Serving certificate
//
// Unless a certificate manager provides it ([Config.CertManager]), the webhook makes its own CA
// and serving certificate, keeps them in one Secret that every replica shares (written with
// resourceVersion compare-and-swap, so replicas agree on one), patches the CA into the
// MutatingWebhookConfiguration's caBundle, and renews the serving certificate before it expires
// without a restart (tls.Config.GetCertificate).
package injector
