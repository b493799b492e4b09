{{/*
Hook RBAC: ServiceAccount, Role and RoleBinding created as hooks of the same phase as their Job,
with a lower weight so they exist before it; deleted with it.
(dict "ctx" $ "name" "<fullname>-certs" "component" "certs" "hook" "pre-install,pre-upgrade" "weight" -15 "rules" (list ...))
*/}}
{{- define "kairn.hookRbac" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "kairn.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
  annotations:
    {{- include "kairn.hookAnnotations" (dict "hook" .hook "weight" .weight) | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "kairn.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
  annotations:
    {{- include "kairn.hookAnnotations" (dict "hook" .hook "weight" .weight) | nindent 4 }}
rules:
  {{- toYaml .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "kairn.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
  annotations:
    {{- include "kairn.hookAnnotations" (dict "hook" .hook "weight" (add .weight 1)) | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}
subjects:
  - kind: ServiceAccount
    name: {{ .name }}
    namespace: {{ .ctx.Release.Namespace }}
{{- end -}}

{{/*
Hook Job running one kairn command.
(dict "ctx" $ "name" ... "component" ... "hook" ... "weight" 0 "command" (list ...) "env" "<yaml list>"
      "deadline" 300 "backoff" 0 "resources" dict "agentsCert" true)
*/}}
{{- define "kairn.hookJob" -}}
{{- $ctx := .ctx -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "kairn.labels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
  annotations:
    {{- include "kairn.hookAnnotations" (dict "hook" .hook "weight" .weight) | nindent 4 }}
spec:
  backoffLimit: {{ .backoff }}
  activeDeadlineSeconds: {{ .deadline }}
  template:
    metadata:
      labels:
        {{- include "kairn.podLabels" (dict "ctx" $ctx "component" .component) | nindent 8 }}
    spec:
      restartPolicy: Never
      serviceAccountName: {{ .name }}
      automountServiceAccountToken: true
      enableServiceLinks: false
      {{- with include "kairn.imagePullSecrets" (dict "ctx" $ctx "images" (list $ctx.Values.image)) }}{{ . | trim | nindent 6 }}{{ end }}
      securityContext:
        {{- toYaml $ctx.Values.agents.podSecurityContext | nindent 8 }}
      {{- with $ctx.Values.agents.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $ctx.Values.agents.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "kairn.kairnImage" $ctx }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          command:
            {{- toYaml .command | nindent 12 }}
          env:
            {{- .env | trim | nindent 12 }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- toYaml $ctx.Values.agents.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- if .agentsCert }}
            - name: agents-cert
              mountPath: /etc/kairn/tls
              readOnly: true
            {{- end }}
            - name: tmp
              mountPath: /tmp
      volumes:
        {{- if .agentsCert }}
        {{- include "kairn.agentsCertVolume" $ctx | nindent 8 }}
        {{- end }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
{{- end -}}
