{{/*
Shared helpers. Object names follow docs/wiring.md.
*/}}

{{- define "kairn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
<fullname>: the release name when it contains the chart name, otherwise <release>-<chart>.
Kept to 40 characters so that "<fullname>-zookeeper-nodes" and pod host names fit DNS labels.
*/}}
{{- define "kairn.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kairn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" $ "component" "kafka"). */}}
{{- define "kairn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kairn.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Full label set; call with (dict "ctx" $ "component" "kafka"). */}}
{{- define "kairn.labels" -}}
{{ include "kairn.selectorLabels" . }}
helm.sh/chart: {{ include "kairn.chart" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kairn
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Labels of pod templates: the full set without helm.sh/chart, so that a chart release that changes
nothing in a pod does not make the roller restart it.
*/}}
{{- define "kairn.podLabels" -}}
{{ include "kairn.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kairn
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
metadata.annotations of a top-level object (commonAnnotations plus extra), emitted with its own
leading newline and two-space indent, nothing when empty; (dict "ctx" $ "extra" dict)
*/}}
{{- define "kairn.annotations" -}}
{{- $all := merge (deepCopy (default dict .extra)) (deepCopy .ctx.Values.commonAnnotations) -}}
{{- if $all }}
  annotations:
    {{- toYaml $all | nindent 4 }}
{{- end }}
{{- end -}}

{{/*
Image reference: (dict "image" .Values.kafka.image "global" .Values.global "default" "3.9.2").
global.imageRegistry replaces the image's own registry; a digest replaces the tag.
*/}}
{{- define "kairn.image" -}}
{{- $registry := .image.registry -}}
{{- if and .global .global.imageRegistry -}}
{{- $registry = .global.imageRegistry -}}
{{- end -}}
{{- $ref := .image.repository -}}
{{- if $registry -}}
{{- $ref = printf "%s/%s" $registry .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default .default .image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{- define "kairn.kairnImage" -}}
{{- include "kairn.image" (dict "image" .Values.image "global" .Values.global "default" .Chart.Version) -}}
{{- end -}}

{{- define "kairn.kafkaImage" -}}
{{- include "kairn.image" (dict "image" .Values.kafka.image "global" .Values.global "default" .Chart.AppVersion) -}}
{{- end -}}

{{- define "kairn.zookeeperImage" -}}
{{- include "kairn.image" (dict "image" .Values.zookeeper.image "global" .Values.global "default" .Chart.AppVersion) -}}
{{- end -}}

{{/* imagePullSecrets block; (dict "ctx" $ "images" (list .Values.image ...)) */}}
{{- define "kairn.imagePullSecrets" -}}
{{- $names := list -}}
{{- range .ctx.Values.global.imagePullSecrets -}}
{{- $names = append $names . -}}
{{- end -}}
{{- range .images -}}
{{- range .pullSecrets -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- if $names }}
imagePullSecrets:
{{- range $names | uniq }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Namespace-local DNS suffix: <ns>.svc.<clusterDomain> */}}
{{- define "kairn.svcDomain" -}}
{{- printf "%s.svc.%s" .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{- define "kairn.zookeeper.fullname" -}}{{ include "kairn.fullname" . }}-zookeeper{{- end -}}
{{- define "kairn.zookeeper.headless" -}}{{ include "kairn.fullname" . }}-zookeeper-nodes{{- end -}}
{{- define "kairn.kafka.fullname" -}}{{ include "kairn.fullname" . }}-kafka{{- end -}}
{{- define "kairn.kafka.headless" -}}{{ include "kairn.fullname" . }}-kafka-brokers{{- end -}}
{{- define "kairn.kafka.bootstrap" -}}{{ include "kairn.fullname" . }}-kafka-bootstrap{{- end -}}
{{- define "kairn.agents.fullname" -}}{{ include "kairn.fullname" . }}-agents{{- end -}}

{{/* Secret names (docs/wiring.md) */}}
{{- define "kairn.secret.clusterCaCert" -}}{{ include "kairn.fullname" . }}-cluster-ca-cert{{- end -}}
{{- define "kairn.secret.clusterCa" -}}{{ include "kairn.fullname" . }}-cluster-ca{{- end -}}
{{- define "kairn.secret.clientsCaCert" -}}{{ include "kairn.fullname" . }}-clients-ca-cert{{- end -}}
{{- define "kairn.secret.clientsCa" -}}{{ include "kairn.fullname" . }}-clients-ca{{- end -}}
{{- define "kairn.secret.kafka" -}}{{ include "kairn.fullname" . }}-kafka-brokers{{- end -}}
{{- define "kairn.secret.zookeeper" -}}{{ include "kairn.fullname" . }}-zookeeper-nodes{{- end -}}
{{- define "kairn.secret.agents" -}}{{ include "kairn.fullname" . }}-agents-cert{{- end -}}

{{/*
The chart's fixed ports (files/ports.yaml, explained in docs/wiring.md) as YAML; use it as
($ports := include "kairn.ports" . | fromYaml), then $ports.kafka.tls.
*/}}
{{- define "kairn.ports" -}}
{{- .Files.Get "files/ports.yaml" -}}
{{- end -}}

{{/*
The lines of a properties file (server.properties, zoo.cfg) for a dict, keys sorted. Helm reads
numbers in values as floats, which print in exponent form when large (10000000 as 1e+07): whole
numbers are printed as integers.
*/}}
{{- define "kairn.properties" -}}
{{- $lines := list -}}
{{- range $k := keys . | sortAlpha -}}
{{- $v := get $ $k -}}
{{- if and (kindIs "float64" $v) (eq $v (float64 (int64 $v))) -}}
{{- $v = int64 $v -}}
{{- end -}}
{{- $lines = append $lines (printf "%s=%v" $k $v) -}}
{{- end -}}
{{- join "\n" $lines -}}
{{- end -}}

{{/* Bootstrap address of the TLS listener, as the agents, hooks and tests use it. */}}
{{- define "kairn.bootstrapTls" -}}
{{- $ports := include "kairn.ports" . | fromYaml -}}
{{- printf "%s.%s:%v" (include "kairn.kafka.bootstrap" .) (include "kairn.svcDomain" .) $ports.kafka.tls -}}
{{- end -}}

{{/* ZooKeeper node addresses (through their TLS sidecars), comma separated. */}}
{{- define "kairn.zookeeperNodes" -}}
{{- $ports := include "kairn.ports" . | fromYaml -}}
{{- $nodes := list -}}
{{- range $i := until (int .Values.zookeeper.replicas) -}}
{{- $nodes = append $nodes (printf "%s-%d.%s.%s:%v" (include "kairn.zookeeper.fullname" $) $i (include "kairn.zookeeper.headless" $) (include "kairn.svcDomain" $) $ports.zookeeper.client) -}}
{{- end -}}
{{- join "," $nodes -}}
{{- end -}}

{{/*
Validation that the schema cannot express (the schema rejects types, unknown keys, replicas 0,
even ZooKeeper sizes and bad sizes first; these repeat the important ones for --skip-schema-validation).
*/}}
{{- define "kairn.validate" -}}
{{- $zk := int .Values.zookeeper.replicas -}}
{{- if or (lt $zk 1) (eq (mod $zk 2) 0) -}}
{{- fail (printf "zookeeper.replicas must be odd and at least 1 (a quorum needs a majority), got %d" $zk) -}}
{{- end -}}
{{- if lt (int .Values.kafka.replicas) 1 -}}
{{- fail (printf "kafka.replicas must be at least 1, got %d" (int .Values.kafka.replicas)) -}}
{{- end -}}
{{- range $k := list "broker.id" "advertised.listeners" "ssl.keystore.location" "ssl.keystore.password" "zookeeper.connect" -}}
{{- if hasKey $.Values.kafka.config $k -}}
{{- fail (printf "kafka.config must not set %q: the chart sets it per pod (see docs/wiring.md)" $k) -}}
{{- end -}}
{{- end -}}
{{- if and (include "kairn.migrating" .) .Release.IsInstall -}}
{{- fail (printf "kafka.metadata.mode=%s is a migration phase, not a way to install: install with kafka.metadata.mode=zookeeper (then helm upgrade --set kafka.metadata.mode=migration) or kafka.metadata.mode=kraft" .Values.kafka.metadata.mode) -}}
{{- end -}}
{{- if and (include "kairn.migrating" .) (not .Values.metrics.jmx.enabled) -}}
{{- fail (printf "kafka.metadata.mode=%s needs metrics.jmx.enabled=true: the migration hooks wait for the controllers' ZkMigrationState on their /metrics" .Values.kafka.metadata.mode) -}}
{{- end -}}
{{- if include "kairn.controllers" . -}}
{{- $c := int .Values.kafka.controller.replicas -}}
{{- if or (lt $c 1) (eq (mod $c 2) 0) -}}
{{- fail (printf "kafka.controller.replicas must be odd and at least 1 (the quorum needs a majority of voters), got %d" $c) -}}
{{- end -}}
{{- range $k := list "node.id" "process.roles" "controller.quorum.bootstrap.servers" "controller.listener.names" "zookeeper.metadata.migration.enable" -}}
{{- if or (hasKey $.Values.kafka.config $k) (hasKey $.Values.kafka.controller.config $k) -}}
{{- fail (printf "kafka.config and kafka.controller.config must not set %q: the chart sets it in KRaft mode (see _kraft.tpl)" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $ext := .Values.kafka.listeners.external -}}
{{- if and $ext.enabled (eq $ext.type "LoadBalancer") (lt (len $ext.advertisedHosts) (int .Values.kafka.replicas)) -}}
{{- fail "kafka.listeners.external.advertisedHosts needs one host per broker when type is LoadBalancer" -}}
{{- end -}}
{{- if and $ext.enabled (eq $ext.type "NodePort") (gt (add (int $ext.nodePortBase) (int .Values.kafka.replicas) -1) 32767) -}}
{{- fail "kafka.listeners.external.nodePortBase + kafka.replicas - 1 exceeds 32767" -}}
{{- end -}}
{{- $_ := include "kairn.tenants" . -}}
{{- end -}}

{{/*
super.users of the brokers: the brokers' and the agents' identities, unless kafka.config sets
super.users (merged the way kafka-configmap.yaml merges kafka.config over its defaults).
*/}}
{{- define "kairn.kafka.superUsers" -}}
{{- $root := include "kairn.fullname" . -}}
{{- $default := dict "super.users" (printf "User:%s-kafka;User:%s-agents" $root $root) -}}
{{- get (merge (pick (deepCopy .Values.kafka.config) "super.users") $default) "super.users" | toString -}}
{{- end -}}

{{/* Effective replication settings, clamped to the broker count. */}}
{{- define "kairn.kafka.replicationFactor" -}}
{{- min (int .Values.kafka.defaultReplicationFactor) (int .Values.kafka.replicas) -}}
{{- end -}}

{{- define "kairn.kafka.minIsr" -}}
{{- $rf := int (include "kairn.kafka.replicationFactor" .) -}}
{{- $min := int .Values.kafka.minInsyncReplicas -}}
{{- if ge $min $rf -}}{{- max 1 (sub $rf 1) -}}{{- else -}}{{- max 1 $min -}}{{- end -}}
{{- end -}}

{{/* Hook annotations; (dict "hook" "pre-upgrade" "weight" "0") */}}
{{- define "kairn.hookAnnotations" -}}
helm.sh/hook: {{ .hook }}
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}

{{/* Common environment of the agents and hooks (identity, cluster, TLS files). */}}
{{- define "kairn.commonEnv" -}}
- name: KAIRN_CLUSTER
  value: {{ .Release.Name | quote }}
- name: KAIRN_FULLNAME
  value: {{ include "kairn.fullname" . | quote }}
- name: KAIRN_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: KAIRN_BOOTSTRAP
  value: {{ include "kairn.bootstrapTls" . | quote }}
- name: KAIRN_TLS_CA_FILE
  value: /etc/kairn/tls/ca.crt
- name: KAIRN_TLS_CERT_FILE
  value: /etc/kairn/tls/user.crt
- name: KAIRN_TLS_KEY_FILE
  value: /etc/kairn/tls/user.key
- name: KAIRN_TLS_CHECK_HOSTNAME
  value: {{ .Values.tls.hostnameVerification | quote }}
- name: KAIRN_LOG_LEVEL
  value: {{ .Values.agents.logLevel | quote }}
{{- end -}}

{{/*
Rules of the agents' Role, the same in the release namespace and in every tenant namespace.
*/}}
{{- define "kairn.agents.roleRules" -}}
# the topic and user ConfigMaps: watch them, write state labels, status and finalizers back
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "update", "patch"]
# an Event on every change of state
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.userAgent.enabled }}
# user credentials (Secrets named after each user); in the release namespace also the clients CA
# that signs TLS users
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- end }}
{{- end -}}

{{/* Volume with the agents identity (Secret <fullname>-agents-cert), mounted at /etc/kairn/tls */}}
{{- define "kairn.agentsCertVolume" -}}
- name: agents-cert
  secret:
    secretName: {{ include "kairn.secret.agents" . }}
    defaultMode: 0440
{{- end -}}
