{{/*
Scaling brokers (agents/scaling): the environment of the scale-in guard that preflight runs,
and of the post-upgrade rebalance after a scale-out.
*/}}
{{- define "kairn.scaleInEnv" -}}
- name: KAIRN_KAFKA_REPLICAS
  value: {{ .Values.kafka.replicas | quote }}
- name: KAIRN_SCALE_IN_DRAIN
  value: {{ .Values.kafka.scaleIn.drain | quote }}
{{ include "kairn.rebalanceSettingsEnv" . }}
{{- end -}}

{{- define "kairn.rebalanceSettingsEnv" -}}
- name: KAIRN_REBALANCE_THROTTLE_BYTES
  value: {{ .Values.kafka.rebalance.throttleBytes | int64 | quote }}
- name: KAIRN_REBALANCE_BATCH_SIZE
  value: {{ .Values.kafka.rebalance.batchSize | quote }}
- name: KAIRN_REBALANCE_TIMEOUT_SECONDS
  value: {{ .Values.kafka.rebalance.deadlineSeconds | quote }}
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
