{{/*
The kairn alert groups (the spec.groups of the PrometheusRule). Series are matched by the
release namespace, the label both ServiceMonitors/PodMonitors and the usual annotation-based
scrape configs set. Broker and ZooKeeper alerts need metrics.jmx.enabled. tests/chart/ checks
them with `promtool check rules` and fires each from a series with `promtool test rules`.

"No active controller" and "quorum lost" also fire when no series is there at all (absent):
brokers or ZooKeeper nodes that nobody can scrape are not a healthy cluster.
*/}}
{{- define "kairn.alerts" -}}
{{- $ns := printf "namespace=%q" .Release.Namespace -}}
{{- $agents := or .Values.topicAgent.enabled .Values.userAgent.enabled -}}
{{- if $agents }}
- name: kairn-agents
  rules:
    - alert: KairnReconcileErrors
      expr: sum by (agent) (increase(kairn_reconciliations_total{ {{- $ns }},result="error"}[15m])) > 0
      for: 15m
      labels:
        severity: warning
      annotations:
        summary: "kairn {{`{{ $labels.agent }}`}} keeps failing to reconcile"
        description: "List the failing resources with: kubectl get cm -n {{ .Release.Namespace }} -l kairn.dev/state=Error"
    - alert: KairnResourcesInError
      expr: sum by (agent) (kairn_resources{ {{- $ns }},state="Error"}) > 0
      for: 30m
      labels:
        severity: warning
      annotations:
        summary: "kairn {{`{{ $labels.agent }}`}} has resources in state Error"
        description: "kubectl get cm -n {{ .Release.Namespace }} -l kairn.dev/state=Error"
    # The agents' certificate comes from the same PKI hook run as the brokers' and ZooKeeper
    # nodes' ones; the hook renews what expires within tls.renewalDays, but only when it runs.
    - alert: KairnCertificateExpiresSoon
      expr: min by (certificate) (kairn_certificate_expiry_timestamp_seconds{ {{- $ns }}}) - time() < {{ mul (int .Values.tls.renewalDays) 86400 }}
      for: 1h
      labels:
        severity: warning
      annotations:
        summary: "kairn certificate {{`{{ $labels.certificate }}`}} expires in {{`{{ $value | humanizeDuration }}`}}"
        description: "Certificates expiring within {{ .Values.tls.renewalDays }} days are renewed by the PKI hook: run helm upgrade for the release in {{ .Release.Namespace }}."
{{- end }}
{{- if .Values.metrics.jmx.enabled }}
- name: kairn-kafka
  rules:
    - alert: KafkaUnderReplicatedPartitions
      expr: sum(kafka_server_replicamanager_underreplicatedpartitions{ {{- $ns }}}) > 0
      for: 10m
      labels:
        severity: warning
      annotations:
        summary: "{{`{{ $value }}`}} Kafka partitions are under-replicated in {{ .Release.Namespace }}"
        description: "A broker is down or cannot keep up; a second failure may take partitions offline."
    - alert: KafkaUnderMinIsrPartitions
      expr: sum(kafka_server_replicamanager_underminisrpartitioncount{ {{- $ns }}}) > 0
      for: 2m
      labels:
        severity: critical
      annotations:
        summary: "{{`{{ $value }}`}} Kafka partitions are under min.insync.replicas in {{ .Release.Namespace }}"
        description: "Producers with acks=all get errors on these partitions."
    - alert: KafkaOfflinePartitions
      expr: sum(kafka_controller_kafkacontroller_offlinepartitionscount{ {{- $ns }}}) > 0
      for: 1m
      labels:
        severity: critical
      annotations:
        summary: "{{`{{ $value }}`}} Kafka partitions have no leader in {{ .Release.Namespace }}"
        description: "Nobody can read or write these partitions."
    - alert: KafkaActiveControllerCount
      expr: sum(kafka_controller_kafkacontroller_activecontrollercount{ {{- $ns }}}) != 1 or absent(kafka_controller_kafkacontroller_activecontrollercount{ {{- $ns }}})
      for: 2m
      labels:
        severity: critical
      annotations:
        summary: "{{`{{ $value }}`}} active Kafka controllers in {{ .Release.Namespace }} (want exactly 1)"
        description: "Without a controller no leader moves and no topic changes; two mean a split brain. No series at all means no broker is scraped."
- name: kairn-zookeeper
  rules:
    - alert: ZooKeeperQuorumLost
      expr: count(zookeeper_quorum_role{ {{- $ns }}}) < {{ add (div (int .Values.zookeeper.replicas) 2) 1 }} or absent(zookeeper_quorum_role{ {{- $ns }}})
      for: 1m
      labels:
        severity: critical
      annotations:
        summary: "ZooKeeper in {{ .Release.Namespace }} has no quorum"
        description: "Fewer than {{ add (div (int .Values.zookeeper.replicas) 2) 1 }} of {{ .Values.zookeeper.replicas }} nodes serve as leader or follower: brokers cannot change metadata."
    - alert: ZooKeeperNodeOutOfQuorum
      expr: count(zookeeper_quorum_role{ {{- $ns }}}) < {{ .Values.zookeeper.replicas }}
      for: 10m
      labels:
        severity: warning
      annotations:
        summary: "{{`{{ $value }}`}} of {{ .Values.zookeeper.replicas }} ZooKeeper nodes serve in {{ .Release.Namespace }}"
        description: "The quorum holds, but one more lost node may break it."
{{- end }}
{{- end -}}
