{{/* The release's name for every object, cut to the 63 characters Kubernetes allows. */}}
{{- define "endusers.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "endusers.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "endusers.labels" -}}
{{ include "endusers.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "endusers.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* More workers than partitions would sit idle: refuse them at install time. */}}
{{- define "endusers.checkReplicas" -}}
{{- if gt (int .Values.replicaCount) (int .Values.partitions) -}}
{{- fail (printf "replicaCount (%d) must be at most partitions (%d): more workers than partitions sit idle" (int .Values.replicaCount) (int .Values.partitions)) -}}
{{- end -}}
{{- end -}}

{{/* The mounted token file: its directory, not a subPath, so that the kubelet's updates of the Secret
reach the worker (a subPath mount never changes) and the worker re-reads it. */}}
{{- define "endusers.tokensDir" -}}
/etc/endusers/api-tokens
{{- end -}}

{{/* ENDUSERS_WEB_ALLOWED_HOSTS. The worker adds it to its defaults (loopback, its host name and
address); the chart lists those too, so the list says what a pod answers to, with the pod's IP and name from the env vars POD_IP and
ENDUSERS_INSTANCE_ID (Kubernetes expands $(NAME) of a variable defined before), and adds the names
clients inside the cluster use: the Service's (and the headless Service's and the pod's own with a
StatefulSet), the host of the dashboard URL the alerts link to, then web.allowedHosts. "*": any. */}}
{{- define "endusers.allowedHosts" -}}
{{- if has "*" .Values.web.allowedHosts -}}
*
{{- else -}}
{{- $fullname := include "endusers.fullname" . -}}
{{- $hosts := list "localhost" "127.0.0.1" "::1" "$(POD_IP)" "$(ENDUSERS_INSTANCE_ID)" -}}
{{- $names := list $fullname -}}
{{- if eq .Values.kind "StatefulSet" -}}
{{- $names = append $names (printf "%s-headless" $fullname) -}}
{{- $names = append $names (printf "$(ENDUSERS_INSTANCE_ID).%s-headless" $fullname) -}}
{{- end -}}
{{- range $names -}}
{{- $hosts = concat $hosts (list . (printf "%s.%s" . $.Release.Namespace) (printf "%s.%s.svc" . $.Release.Namespace) (printf "%s.%s.svc.%s" . $.Release.Namespace $.Values.clusterDomain)) -}}
{{- end -}}
{{- with .Values.alerting.dashboardUrl -}}
{{- $hosts = append $hosts (urlParse .).hostname -}}
{{- end -}}
{{- range .Values.web.allowedHosts -}}
{{- $hosts = append $hosts . -}}
{{- end -}}
{{- $hosts | uniq | join "," -}}
{{- end -}}
{{- end -}}

{{/* With the NetworkPolicy, a worker reaches Alertmanager only on networkPolicy.egress.alertmanager.ports:
refuse a URL on another port at install time rather than let its alerts time out. */}}
{{- define "endusers.checkAlerting" -}}
{{- if .Values.networkPolicy.enabled -}}
{{- $allowed := list -}}
{{- range .Values.networkPolicy.egress.alertmanager.ports -}}
{{- $allowed = append $allowed (toString .) -}}
{{- end -}}
{{- range .Values.alerting.alertmanagerUrls -}}
{{- $url := urlParse . -}}
{{- $port := trimPrefix ":" (regexFind ":[0-9]+$" $url.host) | default (ternary "443" "80" (eq $url.scheme "https")) -}}
{{- if not (has $port $allowed) -}}
{{- fail (printf "alerting.alertmanagerUrls: %s uses port %s, which networkPolicy.egress.alertmanager.ports (%s) does not let the workers reach" . $port (join ", " $allowed)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* With tokens, /metrics answers 401 to a scrape without one: refuse a ServiceMonitor that has none. */}}
{{- define "endusers.checkServiceMonitor" -}}
{{- if and .Values.serviceMonitor.enabled .Values.auth.tokensSecret (not .Values.serviceMonitor.tokenSecret) -}}
{{- fail "serviceMonitor.tokenSecret is required with auth.tokensSecret: /metrics needs a token whose scope is '*'" -}}
{{- end -}}
{{- end -}}

{{/* A worker without tokens serves everyone as an admin: only when auth.open says so, never by default. */}}
{{- define "endusers.checkAuth" -}}
{{- if and .Values.auth.tokensSecret .Values.auth.open -}}
{{- fail "auth.open and auth.tokensSecret contradict each other: set one of them" -}}
{{- end -}}
{{- if not (or .Values.auth.tokensSecret .Values.auth.open) -}}
{{- fail "auth.tokensSecret is required: without tokens anyone who reaches the HTTP port reads every subscription (set auth.open=true only for a private network)" -}}
{{- end -}}
{{- end -}}

{{/* The Kafka connection of every process that talks to Kafka (workers, the gateway): brokers, security,
SASL credentials and the CA from their Secrets. */}}
{{- define "endusers.kafkaEnv" -}}
- name: ENDUSERS_KAFKA
  value: {{ .Values.kafka.brokers | quote }}
- name: ENDUSERS_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if .Values.kafka.sasl.mechanism }}
- name: ENDUSERS_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: ENDUSERS_KAFKA_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.existingSecret is required with a SASL mechanism" .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.usernameKey }}
- name: ENDUSERS_KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- if .Values.kafka.tls.caSecret }}
- name: ENDUSERS_KAFKA_CAFILE
  value: /etc/endusers/kafka-ca/{{ .Values.kafka.tls.caKey }}
{{- end }}
{{- end -}}

{{/* ENDUSERS_SECRET from the Secret secret.name, for every process that digests or seals with it (workers,
the gateway's SCIM routes). */}}
{{- define "endusers.secretEnv" -}}
- name: ENDUSERS_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secret.name }}
      key: {{ .Values.secret.key }}
{{- end -}}

{{/* ENDUSERS_REDIS of every process that talks to Redis (workers, the gateway's SCIM routes): the URL, or
the Secret holding it. */}}
{{- define "endusers.redisEnv" -}}
- name: ENDUSERS_REDIS
  {{- if .Values.redis.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.urlKey }}
  {{- else }}
  value: {{ .Values.redis.url | quote }}
  {{- end }}
{{- end -}}

{{/* NetworkPolicy egress rules, one per entry of a dict name -> networkPolicy.egress.<name> (ports, to),
in the order of their names: the workers' and the gateway's policies admit the same Kafka and Redis. It
starts with a newline: include it with `| trim | nindent`. */}}
{{- define "endusers.egressRules" -}}
{{- range $name, $rule := . }}
# {{ $name }}
- ports:
    {{- range $rule.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with $rule.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "endusers.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "endusers.gatewayLabels" -}}
{{ include "endusers.gatewaySelectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* ENDUSERS_WEB_ALLOWED_HOSTS of the gateway: loopback, the pod's IP, its Service's DNS names, the
Ingress host (the name providers post to), then gateway.allowedHosts. "*": any. */}}
{{- define "endusers.gatewayAllowedHosts" -}}
{{- if has "*" .Values.gateway.allowedHosts -}}
*
{{- else -}}
{{- $name := printf "%s-gateway" (include "endusers.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- $hosts := list "localhost" "127.0.0.1" "::1" "$(POD_IP)" $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.%s.svc" $name .Release.Namespace) (printf "%s.%s.svc.%s" $name .Release.Namespace .Values.clusterDomain) -}}
{{- if .Values.gateway.ingress.enabled -}}
{{- $hosts = append $hosts .Values.gateway.ingress.host -}}
{{- end -}}
{{- range .Values.gateway.allowedHosts -}}
{{- $hosts = append $hosts . -}}
{{- end -}}
{{- $hosts | uniq | join "," -}}
{{- end -}}
{{- end -}}

{{/* An Ingress needs the host providers post to: it is also the only name the gateway answers to from outside. */}}
{{- define "endusers.checkGateway" -}}
{{- if and .Values.gateway.ingress.enabled (not .Values.gateway.ingress.host) -}}
{{- fail "gateway.ingress.host is required with gateway.ingress.enabled: the name identity providers post to" -}}
{{- end -}}
{{- end -}}
