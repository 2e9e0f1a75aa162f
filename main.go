// Command benchtop is a local workbench for serving ML models: runners with
// adaptive batching, a model store, an HTTP front end and a terminal UI.
// The command line is package cli.
package main

import (
	"os"

	"github.com/benchtop/benchtop/cli"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() { os.Exit(cli.Main(os.Args[1:], version)) }
