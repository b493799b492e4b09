{{/*
KRaft mode (kafka.metadata.mode: kraft): names and the parts that controllers and brokers share.

Storage is formatted exactly once. The PKI hook (kairn-certs) creates the Secret
<fullname>-kraft-cluster when it is missing and never changes it afterwards:
  cluster.id           the cluster id (Kafka's Uuid form)
  initial.controllers  "<node id>:<directory id>,..." for the controllers of the first install;
                       each directory id is derived from the cluster id and the node id
                       (agents/pki/kraft.py), so the voters are fixed with the cluster id.
Every controller and broker pod runs the format-storage init container (below): a data volume
without meta.properties is formatted with that cluster id (controllers listed in
initial.controllers with --initial-controllers, every other node with --no-initial-controllers);
a volume whose meta.properties names this cluster and node is left alone; any other volume stops
the pod with a message, so a volume is never reformatted and never joins the wrong cluster.
*/}}

{{/*
The metadata phases (kafka.metadata.mode; agents/migration/README.md): zookeeper, then the
migration's migration and kraft-brokers, then kraft. Each helper is "true" or "":
  kairn.kraft        brokers run in KRaft mode (kraft-brokers, kraft)
  kairn.controllers  the controller quorum is deployed (migration, kraft-brokers, kraft)
  kairn.zookeeper    the ZooKeeper ensemble is rendered (zookeeper, migration, kraft-brokers)
  kairn.migrating    the controllers copy to and write through ZooKeeper (migration, kraft-brokers)
  kairn.kafka4       the Kafka image is 4.x (log4j 2; Kafka 3.9 still reads log4j 1)
*/}}
{{- define "kairn.kraft" -}}
{{- if has .Values.kafka.metadata.mode (list "kraft-brokers" "kraft") }}true{{ end -}}
{{- end -}}
{{- define "kairn.controllers" -}}
{{- if ne .Values.kafka.metadata.mode "zookeeper" }}true{{ end -}}
{{- end -}}
{{- define "kairn.zookeeper" -}}
{{- if ne .Values.kafka.metadata.mode "kraft" }}true{{ end -}}
{{- end -}}
{{- define "kairn.migrating" -}}
{{- if has .Values.kafka.metadata.mode (list "migration" "kraft-brokers") }}true{{ end -}}
{{- end -}}

{{/* The Kafka image of brokers and controllers: Kafka 4 (kraftImageTag) only in phase kraft */}}
{{- define "kairn.kafkaImage.current" -}}
{{- if eq .Values.kafka.metadata.mode "kraft" -}}
{{ include "kairn.kafkaImage.kraft" . }}
{{- else -}}
{{ include "kairn.kafkaImage" . }}
{{- end -}}
{{- end -}}

{{/* The Kafka version of that image's tag ("" when only a digest names it) */}}
{{- define "kairn.kafkaVersion" -}}
{{- $k := .Values.kafka.image -}}
{{- if not $k.digest -}}
{{- default (ternary .Values.kafka.metadata.kraftImageTag .Chart.AppVersion (eq .Values.kafka.metadata.mode "kraft")) $k.tag | toString -}}
{{- end -}}
{{- end -}}

{{- define "kairn.kafka4" -}}
{{- $v := include "kairn.kafkaVersion" . -}}
{{- if $v -}}
{{- if not (hasPrefix "3." $v) }}true{{ end -}}
{{- else if eq .Values.kafka.metadata.mode "kraft" }}true{{ end -}}
{{- end -}}

{{/* Labels on every StatefulSet: the phase, which the preflight hook reads back as the current one */}}
{{- define "kairn.phaseLabel" -}}
kairn.dev/metadata-mode: {{ .Values.kafka.metadata.mode | quote }}
{{- end -}}

{{/* The controllers' /metrics addresses (the migration hooks read ZkMigrationState there) */}}
{{- define "kairn.controller.metrics" -}}
{{- if .Values.metrics.jmx.enabled -}}
{{- $nodes := list -}}
{{- range $i := until (int .Values.kafka.controller.replicas) -}}
{{- $nodes = append $nodes (printf "%s-%d.%s.%s:%v" (include "kairn.controller.fullname" $) $i (include "kairn.controller.headless" $) (include "kairn.svcDomain" $) $.Values.metrics.jmx.port) -}}
{{- end -}}
{{- join "," $nodes -}}
{{- end -}}
{{- end -}}

{{- define "kairn.controller.fullname" -}}{{ include "kairn.fullname" . }}-controller{{- end -}}
{{- define "kairn.controller.headless" -}}{{ include "kairn.fullname" . }}-kafka-controllers{{- end -}}
{{- define "kairn.secret.controllers" -}}{{ include "kairn.fullname" . }}-kafka-controllers{{- end -}}
{{- define "kairn.secret.kraftCluster" -}}{{ include "kairn.fullname" . }}-kraft-cluster{{- end -}}

{{/* node.id of controller 0; controller i is 100 + i, broker i is i, so the two never meet */}}
{{- define "kairn.controller.idBase" -}}100{{- end -}}

{{/* The controllers' CONTROLLER listener addresses: controller.quorum.bootstrap.servers */}}
{{- define "kairn.controller.quorum" -}}
{{- $ports := include "kairn.ports" . | fromYaml -}}
{{- $nodes := list -}}
{{- range $i := until (int .Values.kafka.controller.replicas) -}}
{{- $nodes = append $nodes (printf "%s-%d.%s.%s:%v" (include "kairn.controller.fullname" $) $i (include "kairn.controller.headless" $) (include "kairn.svcDomain" $) $ports.kafka.controller) -}}
{{- end -}}
{{- join "," $nodes -}}
{{- end -}}

{{/* The Kafka image: kafka.image, its tag defaulting to kafka.metadata.kraftImageTag (Kafka 4) */}}
{{- define "kairn.kafkaImage.kraft" -}}
{{- include "kairn.image" (dict "image" .Values.kafka.image "global" .Values.global "default" .Values.kafka.metadata.kraftImageTag) -}}
{{- end -}}

{{/* log4j 2 configuration of Kafka 4 (log4j 1's properties are not read any more) */}}
{{- define "kairn.kraft.log4j2" -}}
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
{{- end -}}

{{/* Settings of controllers and brokers alike: quorum, mutual TLS, authorizer, config providers */}}
{{- define "kairn.kraft.commonProps" -}}
{{- $ports := include "kairn.ports" . | fromYaml -}}
controller.listener.names: CONTROLLER
controller.quorum.bootstrap.servers: {{ include "kairn.controller.quorum" . | quote }}
log.dirs: /var/lib/kafka/data
authorizer.class.name: org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found: "false"
super.users: {{ include "kairn.kafka.superUsers" . | quote }}
ssl.principal.mapping.rules: "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
ssl.client.auth: required
ssl.keystore.type: PKCS12
ssl.truststore.type: PEM
ssl.enabled.protocols: "TLSv1.3,TLSv1.2"
ssl.endpoint.identification.algorithm: {{ ternary "https" "" .Values.tls.hostnameVerification | quote }}
config.providers: "dir,file"
config.providers.dir.class: org.apache.kafka.common.config.provider.DirectoryConfigProvider
config.providers.file.class: org.apache.kafka.common.config.provider.FileConfigProvider
{{- end -}}

{{/*
The init container that formats a node's storage once; (dict "ctx" $ "role" "controller"|"broker").
It runs in the Kafka image with bash only (no other tool of the image is assumed) and builds
the format configuration from server.properties plus the pod's node.id.
*/}}
{{- define "kairn.kraft.formatContainer" -}}
{{- $ctx := .ctx -}}
{{- $ports := include "kairn.ports" $ctx | fromYaml -}}
{{- $controller := eq .role "controller" -}}
{{- $values := ternary $ctx.Values.kafka.controller $ctx.Values.kafka $controller -}}
- name: format-storage
  image: {{ include "kairn.kafkaImage.current" $ctx }}
  imagePullPolicy: {{ $ctx.Values.kafka.image.pullPolicy }}
  command: ["/bin/bash", "-ec"]
  args:
    - |
      node_id=$(( {{ ternary (include "kairn.controller.idBase" $ctx) "0" $controller }} + POD_INDEX ))
      CLUSTER_ID=$(< /etc/kafka/kraft/cluster.id)
      {{- if $controller }}
      INITIAL_CONTROLLERS=$(< /etc/kafka/kraft/initial.controllers)
      {{- end }}
      meta=/var/lib/kafka/data/meta.properties
      if [ -f "$meta" ]; then
        found_cluster= found_node=
        while IFS='=' read -r key value; do
          case "$key" in
            cluster.id) found_cluster=$value ;;
            # broker.id: a broker's volume from ZooKeeper mode (meta.properties version 0),
            # which the migration keeps; Kafka rewrites it with node.id when the broker starts
            node.id|broker.id) found_node=$value ;;
          esac
        done < "$meta"
        if [ "$found_cluster" != "$CLUSTER_ID" ] || [ "$found_node" != "$node_id" ]; then
          echo "format-storage: $meta belongs to cluster $found_cluster node $found_node, this pod is cluster $CLUSTER_ID node $node_id; refusing to start (the volume is left as it is: restore Secret {{ include "kairn.secret.kraftCluster" $ctx }} or give the pod an empty volume)" >&2
          exit 1
        fi
        echo "format-storage: already formatted for cluster $CLUSTER_ID node $node_id"
        exit 0
      fi
      {{- if $controller }}
      # the controllers' addresses, by node id - 100 (the initial voters are among them)
      hosts=({{ range $i := until (int $ctx.Values.kafka.controller.replicas) }} {{ include "kairn.controller.fullname" $ctx }}-{{ $i }}.{{ include "kairn.controller.headless" $ctx }}.{{ include "kairn.svcDomain" $ctx }}{{ end }} )
      voters=
      for entry in ${INITIAL_CONTROLLERS//,/ }; do
        id=${entry%%:*}
        host=${hosts[id - {{ include "kairn.controller.idBase" $ctx }}]:-}
        if [ -z "$host" ]; then
          echo "format-storage: initial voter $id is not one of the ${#hosts[@]} controllers of kafka.controller.replicas" >&2
          exit 1
        fi
        voters="${voters:+$voters,}$id@$host:{{ $ports.kafka.controller }}:${entry#*:}"
      done
      case ",$INITIAL_CONTROLLERS" in
        *",$node_id:"*) quorum=(--initial-controllers "$voters") ;;
        *) quorum=(--no-initial-controllers) ;;
      esac
      {{- else }}
      quorum=(--no-initial-controllers)
      {{- end }}
      { printf '%s\n' "$(< /etc/kafka/config/server.properties)"; echo "node.id=$node_id"; } > /tmp/format.properties
      {{- with $ctx.Values.kafka.metadata.formatVersion }}
      quorum+=(--release-version {{ . | quote }})
      {{- end }}
      exec /opt/kafka/bin/kafka-storage.sh format --cluster-id "$CLUSTER_ID" --config /tmp/format.properties "${quorum[@]}"
  env:
    - name: POD_INDEX
      valueFrom:
        fieldRef:
          fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
    - name: KAFKA_HEAP_OPTS
      value: "-Xmx256m"
    - name: KAFKA_LOG4J_OPTS
      value: {{ include "kairn.kafka.log4jOpts" $ctx | quote }}
  resources:
    {{- toYaml $values.resources | nindent 4 }}
  securityContext:
    {{- toYaml $ctx.Values.kafka.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: data
      mountPath: /var/lib/kafka
    - name: config
      mountPath: /etc/kafka/config
      readOnly: true
    - name: cluster-ca
      mountPath: /etc/kafka/cluster-ca
      readOnly: true
    {{- if not $controller }}
    - name: clients-ca
      mountPath: /etc/kafka/clients-ca
      readOnly: true
    {{- end }}
    - name: kraft-cluster
      mountPath: /etc/kafka/kraft
      readOnly: true
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{/* The volume of the cluster id Secret that the format-storage init container reads */}}
{{- define "kairn.kraft.clusterVolume" -}}
- name: kraft-cluster
  secret:
    secretName: {{ include "kairn.secret.kraftCluster" . }}
    defaultMode: 0440
{{- end -}}

