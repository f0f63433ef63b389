{{/* Name of the chart, or nameOverride. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name: fullnameOverride, else the release name, followed by the chart
name unless the release name already contains it. Cut to 57 so "-admin" still fits in 63.
*/}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 57 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the pods; never change them after a release (selectors are immutable). */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is set. */}}
{{- define "sluice.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* host:port for --admin-listen, bracketing IPv6 addresses. */}}
{{- define "sluice.adminListen" -}}
{{- if contains ":" .Values.admin.address }}
{{- printf "[%s]:%d" .Values.admin.address (int .Values.admin.port) }}
{{- else }}
{{- printf "%s:%d" .Values.admin.address (int .Values.admin.port) }}
{{- end }}
{{- end }}

{{/*
The listener ports, as a list of {name, port, targetPort, nodePort}, for the Service, the
container ports and the NetworkPolicy alike.
*/}}
{{- define "sluice.listenerPorts" -}}
{{- $ports := list }}
{{- if .Values.service.http.enabled }}
{{- $ports = append $ports (dict "name" "http" "port" .Values.service.http.port "targetPort" .Values.service.http.targetPort "nodePort" .Values.service.http.nodePort) }}
{{- end }}
{{- if .Values.service.https.enabled }}
{{- $ports = append $ports (dict "name" "https" "port" .Values.service.https.port "targetPort" .Values.service.https.targetPort "nodePort" .Values.service.https.nodePort) }}
{{- end }}
{{- range .Values.service.extraPorts }}
{{- $ports = append $ports (dict "name" .name "port" .port "targetPort" .targetPort "nodePort" .nodePort) }}
{{- end }}
{{- toJson $ports }}
{{- end }}

{{/* Cross-field rules a JSON schema cannot state. */}}
{{- define "sluice.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.controller.leaderElection) }}
{{- fail "controller.leaderElection must be true when replicaCount is above 1: every replica would write BackendPool status" }}
{{- end }}
{{- if and (or (eq .Values.kind "DaemonSet") .Values.autoscaling.enabled) (not .Values.controller.leaderElection) }}
{{- fail "controller.leaderElection must be true with kind DaemonSet or autoscaling: every pod would write BackendPool status" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.admin.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs admin.service.enabled: the ServiceMonitor scrapes the admin Service" }}
{{- end }}
{{- if and .Values.service.enabled (eq (len (fromJsonArray (include "sluice.listenerPorts" .))) 0) }}
{{- fail "service.enabled needs at least one port: enable service.http or service.https, or list service.extraPorts" }}
{{- end }}
{{- $seen := dict }}
{{- range fromJsonArray (include "sluice.listenerPorts" .) }}
{{- $key := toString .targetPort }}
{{- if hasKey $seen $key }}
{{- fail (printf "service ports %s and %s both target container port %s" (get $seen $key) .name $key) }}
{{- end }}
{{- $_ := set $seen $key .name }}
{{- end }}
{{- if hasKey $seen (toString .Values.admin.port) }}
{{- fail (printf "admin.port %v is also the listener port %s" .Values.admin.port (get $seen (toString .Values.admin.port))) }}
{{- end }}
{{- end }}

{{/* The rules of the watch (Cluster)Role: exactly the calls the controller makes. */}}
{{- define "sluice.rules" -}}
- apiGroups: [sluice.dev]
  resources: [backendpools]
  verbs: [get, list, watch]
# Status is the only thing sluice writes on a BackendPool.
- apiGroups: [sluice.dev]
  resources: [backendpools/status]
  verbs: [get, patch, update]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
# TLS Secrets named by listener.tls.secretName. RBAC cannot limit list/watch by name, so this
# covers every Secret in the watched scope; set watchNamespace to narrow it to one namespace.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
# Ingresses of the sluice IngressClass: read, and status.loadBalancer written (merge patch).
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [patch]
# Gateway API (when its CRDs are installed): Gateways and routes read, their status written
# (merge patch); ReferenceGrants read.
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways, httproutes, grpcroutes, referencegrants]
  verbs: [get, list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways/status, httproutes/status, grpcroutes/status]
  verbs: [patch]
# Events on BackendPools (EndpointHealthy, EndpointUnhealthy) and Ingresses (problems);
# patch updates a repeated event.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/*
The listener ports of a traffic Service. Args: root (the chart context) and nodePorts (whether
fixed node ports apply: not for ClusterIP, and not on the internal Service, whose node ports
Kubernetes allocates so they never clash with the main Service's).
*/}}
{{- define "sluice.trafficPorts" -}}
{{- range fromJsonArray (include "sluice.listenerPorts" .root) }}
- name: {{ .name }}
  port: {{ .port }}
  targetPort: {{ .name }}
  protocol: TCP
  {{- if and .nodePort $.nodePorts }}
  nodePort: {{ .nodePort }}
  {{- end }}
{{- end }}
{{- end }}
