package console_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/ui/console"
)

func TestBytes(t *testing.T) {
	cases := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{512 << 10, "512.0 KiB"},
		{1<<20 - 1, "1024.0 KiB"},
		{1 << 20, "1.0 MiB"},
		{3 << 30, "3.0 GiB"},
		{80 << 30, "80.0 GiB"},
		{2 << 40, "2.0 TiB"},
		{-1, "-1 B"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			if got := console.Bytes(c.n); got != c.want {
				t.Fatalf("Bytes(%d) = %q, want %q", c.n, got, c.want)
			}
		})
	}
}

func TestBar(t *testing.T) {
	cases := []struct {
		name        string
		done, total int64
		want        string
	}{
		{"half", 512 << 10, 1 << 20, " 50%  512.0 KiB / 1.0 MiB"},
		{"complete", 1 << 20, 1 << 20, "100%  1.0 MiB / 1.0 MiB"},
		{"unknown total", 3 << 20, -1, "copying  3.0 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := console.NewBar(&buf, "copying")
			p.Update(c.done, c.total)
			p.Done()
			out := buf.String()
			if !strings.Contains(out, c.want) || !strings.HasSuffix(out, "\r\033[K") {
				t.Fatalf("drew %q, want %q and a cleared line at the end", out, c.want)
			}
		})
	}
	t.Run("no writer", func(t *testing.T) {
		p := console.NewBar(nil, "x")
		p.Update(1, 2)
		p.Done() // no panic, nothing to see
	})
	t.Run("ten frames a second", func(t *testing.T) {
		var buf bytes.Buffer
		p := console.NewBar(&buf, "x")
		for i := range int64(100) {
			p.Update(i, 100)
		}
		if n := strings.Count(buf.String(), "\r"); n != 1 {
			t.Fatalf("%d frames for 100 quick updates, want 1", n)
		}
		p.Update(100, 100)
		if !strings.Contains(buf.String(), "100%") {
			t.Fatal("the last update was not drawn")
		}
	})
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	for name, w := range map[string]io.Writer{"buffer": &bytes.Buffer{}, "file": f, "/dev/null, a character device": devNull} {
		if console.IsTerminal(w) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
}
