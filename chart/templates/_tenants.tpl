{{/*
Tenants (the `tenants` value): namespaces whose topic and user ConfigMaps the agents reconcile,
each confined to a prefix of Kafka names. The agents read the list from the ConfigMap
<fullname>-tenants (agents-tenants.yaml), not from their pod template, so that adding or removing
a tenant restarts nothing.

The schema gives the entries' types and keys only: the rules below are checked here, where the
message can say what to do, and they hold with --skip-schema-validation too.
*/}}

{{- define "kairn.tenantsConfigMap" -}}{{ include "kairn.fullname" . }}-tenants{{- end -}}

{{/*
The tenants, validated and fully defaulted, as JSON {"tenants": [{namespace, prefix,
quotaCeiling (only when set)}, ...]}; use it as (include "kairn.tenants" . | fromJson).tenants
*/}}
{{- define "kairn.tenants" -}}
{{- $out := list -}}
{{- range $i, $t := .Values.tenants -}}
{{- $where := printf "tenants[%d]" $i -}}
{{- if not (kindIs "map" $t) -}}
{{- fail (printf "%s must be a map such as {namespace: team-a}, got %v" $where $t) -}}
{{- end -}}
{{- $ns := toString (default "" (index $t "namespace")) -}}
{{- if not $ns -}}
{{- fail (printf "%s.namespace is missing: give the Kubernetes namespace whose topic and user ConfigMaps the agents should reconcile, e.g. `- namespace: team-a`" $where) -}}
{{- end -}}
{{- if or (gt (len $ns) 63) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $ns)) -}}
{{- fail (printf "%s.namespace %q is not a Kubernetes namespace name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (DNS-1123 label)" $where $ns) -}}
{{- end -}}
{{- if eq $ns $.Release.Namespace -}}
{{- fail (printf "%s.namespace %q is the release namespace, which is the unrestricted admin namespace already: remove it from tenants" $where $ns) -}}
{{- end -}}
{{- $prefix := printf "%s." $ns -}}
{{- if not (kindIs "invalid" (index $t "prefix")) -}}
{{- $prefix = toString (index $t "prefix") -}}
{{- end -}}
{{- if not $prefix -}}
{{- fail (printf "%s.prefix of namespace %q is empty: a tenant needs a prefix for its Kafka names; leave prefix out for the default %q" $where $ns (printf "%s." $ns)) -}}
{{- end -}}
{{- if gt (len $prefix) 200 -}}
{{- fail (printf "%s.prefix of namespace %q is %d characters long: use at most 200, so that topic names under it fit Kafka's limit of 249" $where $ns (len $prefix)) -}}
{{- end -}}
{{- if not (regexMatch "^[a-zA-Z0-9._-]+$" $prefix) -}}
{{- fail (printf "%s.prefix %q of namespace %q has characters that Kafka topic names cannot have: use only letters, digits, '.', '_' and '-'" $where $prefix $ns) -}}
{{- end -}}
{{- if or (hasPrefix "__" $prefix) (hasPrefix "." $prefix) -}}
{{- fail (printf "%s.prefix %q of namespace %q starts with %q, as Kafka's internal names do: choose a prefix that starts with a letter, digit or '-'" $where $prefix $ns (ternary "__" "." (hasPrefix "__" $prefix))) -}}
{{- end -}}
{{- range $j, $other := $out -}}
{{- if eq $other.namespace $ns -}}
{{- fail (printf "tenants[%d] and %s both name namespace %q: list each namespace once" $j $where $ns) -}}
{{- end -}}
{{- /* Kafka refuses a topic whose name differs from another's only by '.' against '_' */ -}}
{{- $a := replace "_" "." $prefix -}}
{{- $b := replace "_" "." $other.prefix -}}
{{- if or (hasPrefix $a $b) (hasPrefix $b $a) -}}
{{- fail (printf "tenants[%d].prefix %q (namespace %q) and %s.prefix %q (namespace %q) overlap: one starts with the other (Kafka treats '.' and '_' in topic names as the same), so both namespaces could claim the same topics; give them prefixes of which neither starts with the other" $j $other.prefix $other.namespace $where $prefix $ns) -}}
{{- end -}}
{{- end -}}
{{- $entry := dict "namespace" $ns "prefix" $prefix -}}
{{- $ceiling := index $t "quotaCeiling" -}}
{{- if $ceiling -}}
{{- if not (kindIs "map" $ceiling) -}}
{{- fail (printf "%s.quotaCeiling of namespace %q must be a map of producerByteRate, consumerByteRate and requestPercentage" $where $ns) -}}
{{- end -}}
{{- range $key, $limit := $ceiling -}}
{{- if not (has $key (list "producerByteRate" "consumerByteRate" "requestPercentage")) -}}
{{- fail (printf "%s.quotaCeiling.%s (namespace %q) is not a quota: use producerByteRate, consumerByteRate or requestPercentage" $where $key $ns) -}}
{{- end -}}
{{- if or (not (or (kindIs "float64" $limit) (kindIs "int64" $limit) (kindIs "int" $limit))) (le (float64 $limit) 0.0) -}}
{{- fail (printf "%s.quotaCeiling.%s (namespace %q) must be a number above 0, got %v" $where $key $ns $limit) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $entry "quotaCeiling" $ceiling -}}
{{- end -}}
{{- $out = append $out $entry -}}
{{- end -}}
{{- dict "tenants" $out | toJson -}}
{{- end -}}
