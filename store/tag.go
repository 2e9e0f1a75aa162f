package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Latest is the version word that means "the newest version".
const Latest = "latest"

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)
	// A version prefix may stop anywhere, "20251125-" included.
	prefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

const nameRule = "use lower-case letters, digits and -._ (1 to 63 characters, starting and ending with a letter or digit)"

// ValidName reports whether s can name a model.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ValidVersion reports whether s can be a model version: the rule of names,
// and not the word "latest".
func ValidVersion(s string) bool { return nameRE.MatchString(s) && s != Latest }

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
