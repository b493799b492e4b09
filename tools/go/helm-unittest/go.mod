// Wrapper module: helm-unittest's own go.mod carries a replace directive, which
// `go install module@version` refuses, so it is built from here with the same replace.
module kairn.dev/tools/helm-unittest

go 1.26.0

require github.com/helm-unittest/helm-unittest v1.1.2

replace github.com/vmware-labs/yaml-jsonpath v0.3.2 => github.com/helm-unittest/yaml-jsonpath v0.4.0
