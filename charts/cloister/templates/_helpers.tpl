{{/* Names. fullname is the release's prefix for every object; the Coordinator's objects are
     named fullname itself, the injector's fullname-injector. */}}
{{- define "cloister.fullname" -}}
{{- if contains "cloister" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-cloister" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cloister.injector" -}}{{ include "cloister.fullname" . }}-injector{{- end -}}

{{/* The webhook configuration is cluster-scoped: its name carries the namespace so that one
     release per namespace never collides with another. */}}
{{- define "cloister.webhookConfiguration" -}}
{{- printf "%s-%s" (include "cloister.injector" .) .Release.Namespace | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{- define "cloister.simulationSecret" -}}
{{- .Values.simulationPlatform.existingSecret | default (printf "%s-simulation" (include "cloister.fullname" .)) -}}
{{- end -}}

{{- define "cloister.labels" -}}
app.kubernetes.io/name: cloister
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "cloister.selector" -}}
app.kubernetes.io/name: cloister
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* coordinatorSelector selects the Coordinator's pods (its Services, PDB, spread). */}}
{{- define "cloister.coordinatorSelector" -}}
{{ include "cloister.selector" . }}
app.kubernetes.io/component: coordinator
{{- end -}}

{{- define "cloister.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* hostPort joins a host and a port as Go's net.JoinHostPort does: an IPv6 host in brackets
     ("[::]:4433"), so that the flag parses (SplitHostPort refuses ":::4433"). A host given in
     brackets already keeps one pair. Called with (dict "host" H "port" P). */}}
{{- define "cloister.hostPort" -}}
{{- $h := .host | toString | trimPrefix "[" | trimSuffix "]" -}}
{{- if contains ":" $h -}}
[{{ $h }}]:{{ .port }}
{{- else -}}
{{ $h }}:{{ .port }}
{{- end -}}
{{- end -}}

{{/* The addresses of the Coordinator's Service, as workloads and the injector reach it. */}}
{{- define "cloister.coordinatorHost" -}}
{{ include "cloister.fullname" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* sgxResources renders name: quantity lines for the SGX device plugin in use; who is
     "coordinator" or "workload". Nothing in simulation or with devicePlugin none. */}}
{{- define "cloister.sgxResources" -}}
{{- $v := .root.Values -}}
{{- if not $v.simulation -}}
{{- $epc := ternary $v.sgx.coordinatorEPC $v.sgx.workloadEPC (eq .who "coordinator") -}}
{{- if eq $v.sgx.devicePlugin "intel" }}
sgx.intel.com/epc: {{ $epc | quote }}
sgx.intel.com/enclave: "1"
sgx.intel.com/provision: "1"
{{- else if eq $v.sgx.devicePlugin "azure" }}
kubernetes.azure.com/sgx_epc_mem_in_MiB: {{ trimSuffix "Mi" $epc | quote }}
{{- else if eq $v.sgx.devicePlugin "custom" }}
{{- range $name, $qty := (index $v.sgx.custom .who) }}
{{ $name }}: {{ $qty | quote }}
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* pccsURL is the certification API the Coordinator fetches collateral from. */}}
{{- define "cloister.pccsURL" -}}
{{- $c := .Values.collateral -}}
{{- if eq $c.service "azure" -}}
https://global.acccache.azure.net/sgx/certification/v4
{{- else if eq $c.service "pccs" -}}
{{ required "collateral.pccsURL is required with collateral.service pccs" $c.pccsURL }}
{{- else -}}
https://api.trustedservices.intel.com/sgx/certification/v4
{{- end -}}
{{- end -}}

{{/* simulationFiles lists the files of a simulated platform (`cloister sim init`) as Secret
     keys and the paths below the mount; a test in package charts keeps it equal to what
     sim.Create writes. */}}
{{- define "cloister.simulationItems" -}}
{{- range list "README-SIMULATION.txt" "pck_chain.pem" "pck_crl.der" "pck_crl_issuer_chain.pem" "platform.json" "qe_identity.json" "qe_identity_issuer_chain.pem" "root_ca.pem" "root_ca_crl.der" "tcb_info.json" "tcb_info_issuer_chain.pem" "private/attestation_key.pem" "private/pck_ca_key.pem" "private/pck_key.pem" "private/root_ca_key.pem" "private/tcb_signing_key.pem" }}
- key: {{ replace "/" "." . }}
  path: {{ . }}
{{- end }}
{{- end -}}
