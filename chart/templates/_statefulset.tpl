{{/* What the ZooKeeper and Kafka StatefulSets share: where their pods run, their data volume. */}}

{{/*
Pod spec fields placing a component's pods: its priority class, its affinity (or the soft or hard
anti-affinity on host names that podAntiAffinity asks for), its topology spread (by default a
soft spread over zones), node selector and tolerations;
(dict "ctx" $ "component" "kafka" "values" .Values.kafka)
*/}}
{{- define "kairn.placement" -}}
{{- $v := .values -}}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- if $v.affinity }}
affinity:
  {{- toYaml $v.affinity | nindent 2 }}
{{- else if ne $v.podAntiAffinity "none" }}
affinity:
  {{- include "kairn.podAntiAffinity" (dict "ctx" .ctx "component" .component "mode" $v.podAntiAffinity) | trim | nindent 2 }}
{{- end }}
topologySpreadConstraints:
  {{- if $v.topologySpreadConstraints }}
  {{- toYaml $v.topologySpreadConstraints | nindent 2 }}
  {{- else }}
  {{- include "kairn.zoneSpread" (dict "ctx" .ctx "component" .component) | nindent 2 }}
  {{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Soft or hard pod anti-affinity on the hostname for one component; (dict "ctx" $ "component" "kafka" "mode" "soft").
*/}}
{{- define "kairn.podAntiAffinity" -}}
{{- if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "kairn.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- else if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "kairn.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 10 }}
{{- end }}
{{- end -}}

{{/* Default topology spread over zones (soft); (dict "ctx" $ "component" "kafka") */}}
{{- define "kairn.zoneSpread" -}}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "kairn.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/*
The volumeClaimTemplate of a component's "data" volume (when its storage is not ephemeral);
(dict "ctx" $ "component" "kafka" "storage" .Values.kafka.storage)
*/}}
{{- define "kairn.dataClaim" -}}
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata:
    name: data
    labels:
      {{- include "kairn.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
  spec:
    accessModes: ["ReadWriteOnce"]
    {{- if .storage.storageClass }}
    {{- if eq "-" .storage.storageClass }}
    storageClassName: ""
    {{- else }}
    storageClassName: {{ .storage.storageClass | quote }}
    {{- end }}
    {{- end }}
    resources:
      requests:
        storage: {{ .storage.size | quote }}
{{- end -}}
