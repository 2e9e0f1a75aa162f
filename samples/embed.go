package samples

import _ "embed"

// Config is the sample config that runs when the user gives none, so that a
// first `benchtop` shows every kind of runner and API at work.
//
//go:embed benchtop.yaml
var Config []byte

// ConfigName is how messages refer to the embedded config.
const ConfigName = "<embedded samples/benchtop.yaml>"
