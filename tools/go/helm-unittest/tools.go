//go:build tools

// Package tools pins helm-unittest for the wrapper module.
package tools

import _ "github.com/helm-unittest/helm-unittest/cmd/helm-unittest"
