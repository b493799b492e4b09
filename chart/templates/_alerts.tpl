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
{{- if include "kairn.controllers" . }}
{{- $voters := int .Values.kafka.controller.replicas }}
{{- $majority := add (div $voters 2) 1 }}
- name: kairn-controllers
  rules:
    - alert: KafkaControllerQuorumLost
      expr: count(kafka_server_raft_high_watermark{ {{- $ns }}}) < {{ $majority }} or absent(kafka_server_raft_high_watermark{ {{- $ns }}})
      for: 1m
      labels:
        severity: critical
      annotations:
        summary: "The KRaft controller quorum in {{ .Release.Namespace }} has no majority"
        description: "Fewer than {{ $majority }} of {{ $voters }} controllers serve: no metadata change (topics, leaders, ACLs, users) can be committed."
    - alert: KafkaControllerOutOfQuorum
      expr: count(kafka_server_raft_high_watermark{ {{- $ns }}}) < {{ $voters }}
      for: 10m
      labels:
        severity: warning
      annotations:
        summary: "{{`{{ $value }}`}} of {{ $voters }} KRaft controllers serve in {{ .Release.Namespace }}"
        description: "The quorum holds, but one more lost controller may break it."
    # a controller whose log ends far behind the quorum's high watermark is not caught up: it
    # cannot take over as leader, and a roll must not restart another controller meanwhile
    - alert: KafkaControllerRaftLag
      expr: max(kafka_server_raft_high_watermark{ {{- $ns }}}) - on() group_right() kafka_server_raft_log_end_offset{ {{- $ns }}} > 10000
      for: 5m
      labels:
        severity: warning
      annotations:
        summary: "A KRaft controller is {{`{{ $value }}`}} records behind the quorum in {{ .Release.Namespace }}"
        description: "Its metadata log does not catch up with the leader: check its pod's log and its disk."
    - alert: KafkaControllerCommitLatencyHigh
      expr: max(kafka_server_raft_commit_latency_avg_ms{ {{- $ns }}}) > 1000
      for: 10m
      labels:
        severity: warning
      annotations:
        summary: "KRaft commits take {{`{{ $value }}`}} ms on average in {{ .Release.Namespace }}"
        description: "Metadata changes (topics, leaders, ACLs, users) are slow: the controllers' disks or network are too slow or overloaded."
    - alert: KafkaMetadataErrors
      expr: max(delta(kafka_controller_kafkacontroller_metadataerrorcount{ {{- $ns }}}[15m])) > 0 or max(delta(kafka_server_broker_metadata_apply_errors{ {{- $ns }}}[15m])) > 0 or max(delta(kafka_server_broker_metadata_load_errors{ {{- $ns }}}[15m])) > 0
      labels:
        severity: critical
      annotations:
        summary: "Kafka in {{ .Release.Namespace }} failed to load or apply metadata records"
        description: "A controller or broker hit an error in the metadata log: its view of the cluster may be wrong. Read the logs of the controllers and brokers."
    - alert: KafkaFencedBrokers
      expr: max(kafka_controller_kafkacontroller_fencedbrokercount{ {{- $ns }}}) > 0
      for: 5m
      labels:
        severity: warning
      annotations:
        summary: "{{`{{ $value }}`}} Kafka brokers are fenced in {{ .Release.Namespace }}"
        description: "A fenced broker is registered but leads and follows no partition: it stopped heartbeating to the controllers or has not caught up with the metadata log."
{{- else }}
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
{{- end }}
{{- end -}}
