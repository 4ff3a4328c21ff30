//go:build tools

// Package tools pins the Python language host. sdk/v3 v3.79.0 is the last release
// that ships it inside the sdk module; later releases moved it to a module of its
// own that the module proxy does not serve (see toolchain/README.md).
package tools

import _ "github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python"
