package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/benchtop/benchtop/store/names"
)

// Latest is the version word that means "the newest version".
const Latest = "latest"

// A version prefix may stop anywhere, "20251125-" included.
var prefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

const nameRule = "use " + names.Rule

// ValidName reports whether s can name a model (or a model's method): the
// rule of package names, the one runners and APIs follow too.
func ValidName(s string) bool { return names.Valid(s) }

// ValidVersion reports whether s can be a model version: the rule of names,
// and not the word "latest".
func ValidVersion(s string) bool { return names.Valid(s) && s != Latest }

func checkName(s string) error {
	if !ValidName(s) {
		return fmt.Errorf("model name %q: %s", s, nameRule)
	}
	return nil
}

func checkVersion(s string) error {
	if s == Latest {
		return fmt.Errorf("version %q is reserved: it means the newest version", s)
	}
	if !ValidVersion(s) {
		return fmt.Errorf("version %q: %s", s, nameRule)
	}
	return nil
}

// Tag names a model: Name with Version "" (the latest), an exact version,
// or a prefix unique among the name's versions.
type Tag struct {
	Name    string
	Version string
}

// String is "name:version", or "name:latest" for the latest.
func (t Tag) String() string {
	if t.Version == "" {
		return t.Name + ":" + Latest
	}
	return t.Name + ":" + t.Version
}

// ParseTag reads "name", "name:latest", "name:version" or "name:prefix".
func ParseTag(s string) (Tag, error) {
	if s == "" {
		return Tag{}, fmt.Errorf("empty model tag: want name, name:latest or name:version")
	}
	name, version, hasVersion := strings.Cut(s, ":")
	if err := checkName(name); err != nil {
		return Tag{}, fmt.Errorf("model tag %q: %w", s, err)
	}
	if !hasVersion || version == Latest {
		return Tag{Name: name}, nil
	}
	if !prefixRE.MatchString(version) {
		return Tag{}, fmt.Errorf("model tag %q: version %q: %s", s, version, nameRule)
	}
	return Tag{Name: name, Version: version}, nil
}

// NewVersion returns a fresh version: the UTC time to the second, so that
// versions sort by creation, and a random suffix, so that two imports in
// the same second differ.
func NewVersion(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
