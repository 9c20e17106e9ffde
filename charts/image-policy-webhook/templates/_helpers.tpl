{{/*
Fixed names. They are the original product's (docs/contract.md §5): documentation, runbooks and the
ClusterImagePolicy instructions refer to them, so they do not follow the release name.
One release per cluster, therefore: the webhook and the cluster-scoped RBAC are singletons.
*/}}
{{- define "image-policy.namespace" -}}{{ .Values.deploymentNamespace }}{{- end }}
{{- define "image-policy.managerName" -}}image-policy-controller-manager{{- end }}
{{- define "image-policy.serviceName" -}}image-policy-webhook-service{{- end }}
{{- define "image-policy.webhookConfigName" -}}image-policy-validating-webhook-configuration{{- end }}
{{- define "image-policy.webhookName" -}}image-policy-webhook.signing.apps.tanzu.com{{- end }}
{{- define "image-policy.webhookPath" -}}/signing-policy-check{{- end }}
{{- define "image-policy.mutatingConfigName" -}}image-policy-mutating-webhook-configuration{{- end }}
{{- define "image-policy.pinPath" -}}/pin-digests{{- end }}
{{- define "image-policy.tlsSecretName" -}}image-policy-webhook-tls{{- end }}
{{- define "image-policy.certificateName" -}}image-policy-webhook-cert{{- end }}
{{- define "image-policy.customCasName" -}}image-policy-custom-cas{{- end }}
{{- define "image-policy.priorityClassName" -}}system-cluster-critical{{- end }}

{{/* Labels on every object. */}}
{{- define "image-policy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: image-policy-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: image-policy
{{- end }}

{{/* The operator's Pods: the selector of the Deployment, Service, PDB, NetworkPolicy, spreading. */}}
{{- define "image-policy.selectorLabels" -}}
app.kubernetes.io/name: image-policy-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller-manager
{{- end }}

{{/* repository:tag, or repository@digest when a digest is pinned (it wins). */}}
{{- define "image-policy.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/*
How the webhook's serving certificate is managed: "url" (webhook.url: served outside the
cluster with a certificate the chart knows nothing of), "certManager", "helm" or "operator"
(also with webhook.url: the operator outside the cluster manages its own).
*/}}
{{- define "image-policy.certMode" -}}
{{- if and .Values.webhook.url (ne .Values.certificates.mode "operator") -}}url
{{- else if .Values.certManager.enabled -}}certManager
{{- else -}}{{ .Values.certificates.mode }}
{{- end -}}
{{- end }}

{{/*
Whether the chart creates deploymentNamespace: createNamespace, unless it is the release's own
namespace, which exists before anything is installed (helm --create-namespace or by hand).
*/}}
{{- define "image-policy.createsNamespace" -}}
{{- if and .Values.createNamespace (ne .Values.deploymentNamespace .Release.Namespace) }}true{{ end -}}
{{- end }}

{{/* The operator runs in the cluster unless webhook.url sends admissions elsewhere. */}}
{{- define "image-policy.inCluster" -}}
{{- if not .Values.webhook.url }}true{{ end -}}
{{- end }}

{{/* Settings that cannot be expressed in values.schema.json; fail early with a clear message. */}}
{{- define "image-policy.validate" -}}
{{- if and .Values.webhook.url .Values.certManager.enabled -}}
{{- fail "webhook.url and certManager.enabled exclude each other: with webhook.url the webhook is served outside the cluster, with the certificate whose CA is webhook.caBundle" -}}
{{- end -}}
{{- if and .Values.quota.enabled (lt (int .Values.quota.podNumber) (add1 (int .Values.replicas) | int)) -}}
{{- fail (printf "quota.podNumber (%d) must be at least replicas + 1 (%d), or a rolling update cannot start its new Pod" (int .Values.quota.podNumber) (add1 (int .Values.replicas))) -}}
{{- end -}}
{{- end }}

{{/*
A list of strings as CEL string literals, comma-separated: "a", "b". Namespace names hold
no quote or backslash (the schema checks them), so quoting them is enough.
*/}}
{{- define "image-policy.celStrings" -}}
{{- $quoted := list -}}
{{- range . -}}
{{- $quoted = append $quoted (printf "'%s'" .) -}}
{{- end -}}
{{- join ", " $quoted -}}
{{- end -}}

{{/*
A Go duration (1h30m, 720h, 500ms: the units h, m, s, ms, decimals allowed) in whole seconds.
*/}}
{{- define "image-policy.seconds" -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|h|m|s)" . -1 -}}
{{- $unit := regexFind "(ms|h|m|s)$" . -}}
{{- $scale := get (dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001) $unit -}}
{{- $total = addf $total (mulf (trimSuffix $unit . | float64) $scale) -}}
{{- end -}}
{{- $total | int64 -}}
{{- end -}}
