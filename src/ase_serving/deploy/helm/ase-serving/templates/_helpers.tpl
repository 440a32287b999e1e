{{- define "ase.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ase.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ase.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ase.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway") */}}
{{- define "ase.selector" -}}
app.kubernetes.io/name: {{ include "ase.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ase.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "ase.secretName" -}}
{{- default (printf "%s-config-credentials" (include "ase.fullname" .)) .Values.configCentre.existingSecret -}}
{{- end -}}

{{- define "ase.configMapName" -}}
{{- default (printf "%s-schemas" (include "ase.fullname" .)) .Values.configCentre.configmap.existingConfigMap -}}
{{- end -}}

{{- define "ase.configAddress" -}}
{{- $cc := .Values.configCentre -}}
{{- if eq $cc.mode "etcd" -}}
{{- printf "etcd://%s-etcd:2379" (include "ase.fullname" .) -}}
{{- else if eq $cc.mode "external" -}}
{{- required "configCentre.external.address is required with configCentre.mode=external (e.g. etcd://etcd:2379)" $cc.external.address -}}
{{- else if eq $cc.mode "configmap" -}}
{{- printf "configmap://%s?project=%s&group=%s" $cc.configmap.mountPath .Values.project .Values.group -}}
{{- else -}}
{{- fail (printf "configCentre.mode %q is not one of etcd, external, configmap" $cc.mode) -}}
{{- end -}}
{{- end -}}

{{/* The environment every component gets: where the config centre is, and which project/group. */}}
{{- define "ase.clusterEnv" -}}
- name: ASE_CONFIG_ADDRESS
  value: {{ include "ase.configAddress" . | quote }}
- name: ASE_PROJECT
  value: {{ .Values.project | quote }}
- name: ASE_GROUP
  value: {{ .Values.group | quote }}
- name: ASE_HOME
  value: /var/lib/ase
{{- if or .Values.configCentre.account .Values.configCentre.existingSecret }}
- name: ASE_CONFIG_ACCOUNT
  valueFrom:
    secretKeyRef:
      name: {{ include "ase.secretName" . }}
      key: account
- name: ASE_CONFIG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ase.secretName" . }}
      key: password
{{- end }}
{{- end -}}

{{/* Writable folders for a read-only root file system: $ASE_HOME and /tmp. */}}
{{- define "ase.scratchVolumes" -}}
- name: ase-home
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- if eq .Values.configCentre.mode "configmap" }}
- name: schemas
  configMap:
    name: {{ include "ase.configMapName" . }}
{{- end }}
{{- end -}}

{{- define "ase.scratchMounts" -}}
- name: ase-home
  mountPath: /var/lib/ase
- name: tmp
  mountPath: /tmp
{{- if eq .Values.configCentre.mode "configmap" }}
- name: schemas
  mountPath: {{ .Values.configCentre.configmap.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "ase.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}
