{{/*
Broker and ZooKeeper metrics: the Prometheus JMX exporter java agent. The Kafka image lacks it,
so a (non-sidecar) init container copies it from the kairn image (/opt/kairn/jmx, see the
Dockerfile) into the emptyDir "jmx-agent", which the JVM container mounts at /opt/jmx-agent and
loads with -javaagent (KAFKA_OPTS, read by kafka-run-class.sh for brokers and ZooKeeper alike).
The agent serves /metrics on 0.0.0.0:<metrics.jmx.port> (every IPv4 address of the pod), with
the rule file of chart/files/jmx/ that the component's ConfigMap carries as jmx-exporter.yaml.
*/}}

{{/* The init container; call with the root context. */}}
{{- define "kairn.jmx.initContainer" -}}
- name: jmx-agent
  image: {{ include "kairn.kairnImage" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["cp", "/opt/kairn/jmx/jmx_prometheus_javaagent.jar", "/opt/jmx-agent/jmx_prometheus_javaagent.jar"]
  resources:
    {{- toYaml .Values.metrics.jmx.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.agents.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: jmx-agent
      mountPath: /opt/jmx-agent
{{- end -}}

{{/* KAFKA_OPTS loading the agent; (dict "ctx" $ "config" "/etc/kafka/config/jmx-exporter.yaml") */}}
{{- define "kairn.jmx.env" -}}
- name: KAFKA_OPTS
  value: "-javaagent:/opt/jmx-agent/jmx_prometheus_javaagent.jar=0.0.0.0:{{ .ctx.Values.metrics.jmx.port }}:{{ .config }}"
{{- end -}}

{{- define "kairn.jmx.port" -}}
- name: http-metrics
  containerPort: {{ .Values.metrics.jmx.port }}
{{- end -}}

{{- define "kairn.jmx.mount" -}}
- name: jmx-agent
  mountPath: /opt/jmx-agent
  readOnly: true
{{- end -}}

{{- define "kairn.jmx.volume" -}}
- name: jmx-agent
  emptyDir:
    sizeLimit: 16Mi
{{- end -}}

{{/* Annotations of a headless Service for annotation-based scraping (nothing when off). */}}
{{- define "kairn.jmx.scrapeAnnotations" -}}
{{- if and .Values.metrics.jmx.enabled .Values.metrics.annotations.enabled -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.jmx.port | quote }}
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}
