// Package names holds the one rule for the names of runners, APIs, models,
// model versions and model methods. A name is 1 to 63 lower-case letters,
// digits and "-._", starting and ending with a letter or digit: it is safe
// as a folder name in the model store ("..", "/" and hidden files cannot
// be spelt), as a URL path segment (POST /<api>, /v2/models/<runner>) and
// as a Prometheus label value, and it reads the same everywhere it is shown.
package names

import "regexp"

// Rule says what Valid accepts, for messages: "name %q: use " + Rule.
const Rule = "lower-case letters, digits and -._ (1 to 63 characters, starting and ending with a letter or digit)"

var re = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// Valid reports whether s follows the rule.
func Valid(s string) bool { return re.MatchString(s) }
