{{/*
Scaling brokers (agents/scaling): the environment of the scale-in guard that preflight runs,
and of the post-upgrade rebalance after a scale-out.
*/}}
{{- define "kairn.scaleInEnv" -}}
- name: KAIRN_KAFKA_REPLICAS
  value: {{ .Values.kafka.replicas | quote }}
- name: KAIRN_SCALE_IN_DRAIN
  value: {{ .Values.kafka.scaleIn.drain | quote }}
{{ include "kairn.rebalanceSettingsEnv" (dict "ctx" . "deadline" .Values.kafka.scaleIn.drainDeadlineSeconds) }}
{{- end -}}

{{/* Throttle, batch size, and the rebalancer's own time limit: shorter than the Job's
deadline ("deadline"), so that the rebalancer stops itself and names the partitions it
waited for (a RebalanceFailed Event, the hook's stderr) before Kubernetes kills the pod
without a word. The rebalance ConfigMaps' server ("deadline" unset) gets deadlineSeconds. */}}
{{- define "kairn.rebalanceSettingsEnv" -}}
{{- $v := .ctx.Values.kafka.rebalance -}}
{{- $deadline := int (.deadline | default $v.deadlineSeconds) -}}
{{- $limit := $deadline -}}
{{- if .deadline }}{{ $limit = sub $deadline (min 60 (div $deadline 10)) }}{{ end -}}
- name: KAIRN_REBALANCE_THROTTLE_BYTES
  value: {{ $v.throttleBytes | int64 | quote }}
- name: KAIRN_REBALANCE_BATCH_SIZE
  value: {{ $v.batchSize | quote }}
- name: KAIRN_REBALANCE_TIMEOUT_SECONDS
  value: {{ $limit | quote }}
{{- end -}}

{{/* The rebalance ConfigMaps' server runs (a container of the agents Deployment). */}}
{{- /* not during the migration: a reassignment would race the brokers' rolls between modes */ -}}
{{- define "kairn.rebalanceRequests" -}}
{{- if and .Values.roller.enabled .Values.kafka.rebalance.requests.enabled (not (include "kairn.migrating" .)) -}}true{{- end -}}
{{- end -}}

{{/* The preflight Job's deadline: longer by the drain's when the drain may run. */}}
{{- define "kairn.preflightDeadline" -}}
{{- if .Values.kafka.scaleIn.drain -}}
{{- add .Values.roller.preflightDeadlineSeconds .Values.kafka.scaleIn.drainDeadlineSeconds -}}
{{- else -}}
{{- .Values.roller.preflightDeadlineSeconds -}}
{{- end -}}
{{- end -}}

{{/* The brokers a scale-out adds ("" when this upgrade adds none): from the StatefulSet
Helm is about to change, read at render time, so nothing is rendered for other upgrades. */}}
{{- define "kairn.addedBrokers" -}}
{{- $sts := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "kairn.kafka.fullname" .) -}}
{{- if and $sts $sts.spec -}}
{{- $old := int $sts.spec.replicas -}}
{{- $new := int .Values.kafka.replicas -}}
{{- if lt $old $new -}}
{{- join "," (untilStep $old $new 1) -}}
{{- end -}}
{{- end -}}
{{- end -}}


{{/* The environment of the rebalance ConfigMaps' server: kairn-roller's connection settings
(the agents' identity) and the names it reads the metadata mode from. */}}
{{- define "kairn.rebalanceRequestsEnv" -}}
{{ include "kairn.commonEnv" . }}
- name: KAIRN_KAFKA_STATEFULSET
  value: {{ include "kairn.kafka.fullname" . | quote }}
{{- if include "kairn.kraft" . }}
- name: KAIRN_CONTROLLER_STATEFULSET
  value: {{ include "kairn.controller.fullname" . | quote }}
{{- else }}
- name: KAIRN_ZOOKEEPER_STATEFULSET
  value: {{ include "kairn.zookeeper.fullname" . | quote }}
- name: KAIRN_ZOOKEEPER_NODES
  value: {{ include "kairn.zookeeperNodes" . | quote }}
{{- end }}
{{ include "kairn.rebalanceSettingsEnv" (dict "ctx" .) }}
- name: KAIRN_REBALANCE_REQUESTS_INTERVAL_SECONDS
  value: {{ .Values.kafka.rebalance.requests.intervalSeconds | quote }}
{{- end -}}
