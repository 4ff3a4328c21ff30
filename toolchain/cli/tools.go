//go:build tools

// Package tools pins the Pulumi CLI's main package, so that `go build` in this
// wrapper module builds it with pkg/v3's own replace directives repeated above.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
