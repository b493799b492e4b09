{{/*
The ZooKeeper-to-KRaft migration's chart parts (agents/migration/README.md, docs/migration.md).
*/}}
{{/*
Annotations of the ZooKeeper objects during the migration: Helm keeps them when the finalizing
upgrade (kraft) stops rendering them, so ZooKeeper outlives the controllers' last dual write;
the roll hook deletes them once Kafka reports the migration finalized (volumes are kept).
*/}}
{{- define "kairn.zookeeper.keep" -}}
{{- if include "kairn.migrating" . }}
helm.sh/resource-policy: keep
{{- end }}
{{- end -}}

{{/*
A ZooKeeper client's TLS sidecar configuration (stunnel): plain TCP on 127.0.0.1:<client port>
(zookeeper.connect) to the ZooKeeper nodes with mutual TLS, round robin with failover; the node
must present a ZooKeeper certificate. Brokers in ZooKeeper mode and controllers during the
migration run it. (dict "ctx" $ "pod" "<pod name>"): a ConfigMap data key, indented for data:. The
pod's certificate is in /etc/kafka/certs.
*/}}
{{- define "kairn.stunnel.zookeeper" -}}
{{- $ctx := .ctx -}}
{{- $pod := .pod -}}
{{- $zkPort := (include "kairn.ports" $ctx | fromYaml).zookeeper.client }}
  stunnel-{{ $pod }}.conf: |
    ; TLS sidecar of {{ $pod }}: the {{ ternary "controller" "broker" (contains "-controller-" $pod) }}'s ZooKeeper connection
    foreground = yes
    syslog = no
    pid =
    debug = {{ $ctx.Values.tls.sidecar.logLevel }}
    sslVersionMin = TLSv1.2

    [zookeeper]
    client = yes
    delay = yes
    accept = 127.0.0.1:{{ $zkPort }}
    {{- range $z := until (int $ctx.Values.zookeeper.replicas) }}
    connect = {{ printf "%s-%d.%s.%s" (include "kairn.zookeeper.fullname" $ctx) $z (include "kairn.zookeeper.headless" $ctx) (include "kairn.svcDomain" $ctx) }}:{{ $zkPort }}
    {{- end }}
    failover = rr
    checkHost = {{ printf "%s-zookeeper-client.%s.svc" (include "kairn.fullname" $ctx) $ctx.Release.Namespace }}
    cert = /etc/kafka/certs/{{ $pod }}.crt
    key = /etc/kafka/certs/{{ $pod }}.key
    CAfile = /etc/kafka/cluster-ca/ca.crt
    verifyChain = yes
{{- end -}}

{{/* Kafka's logging configuration: log4j 2 for Kafka 4, log4j 1 for Kafka 3.9 */}}
{{- define "kairn.kafka.log4j" -}}
{{- if include "kairn.kafka4" . -}}
log4j2.properties: |
  {{- include "kairn.kraft.log4j2" . | nindent 2 }}
{{- else -}}
log4j.properties: |
  log4j.rootLogger=INFO, stdout
  log4j.appender.stdout=org.apache.log4j.ConsoleAppender
  log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
  log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
  log4j.logger.kafka=INFO
  log4j.logger.org.apache.kafka=INFO
  log4j.logger.org.apache.zookeeper=WARN
  log4j.logger.kafka.request.logger=WARN
  log4j.logger.kafka.authorizer.logger=WARN
  log4j.logger.state.change.logger=INFO
{{- end -}}
{{- end -}}

{{- define "kairn.kafka.log4jOpts" -}}
{{- if include "kairn.kafka4" . -}}
-Dlog4j2.configurationFile=/etc/kafka/config/log4j2.properties
{{- else -}}
-Dlog4j.configuration=file:/etc/kafka/config/log4j.properties
{{- end -}}
{{- end -}}
