package approvald_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's example program runs as written (but for the address) and
// prints the decision a human made meanwhile.
func TestReadmeExampleRuns(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	match := regexp.MustCompile("(?s)<!-- example -->\n```go\n(.*?)```").FindSubmatch(readme)
	if match == nil {
		t.Fatal("README.md has no example")
	}
	// Inside the module, so that it builds against this very package.
	dir, err := os.MkdirTemp(".", "readme-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	program := strings.ReplaceAll(string(match[1]), "127.0.0.1:50051", addrA)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command("go", "run", "./"+filepath.Base(dir))
	out := make(chan []byte, 1)
	go func() {
		b, err := run.CombinedOutput()
		if err != nil {
			t.Errorf("the example failed: %v\n%s", err, b)
		}
		out <- b
	}()
	human := dial(t, addrB, "go-human")
	pending := pendingOf(t, human, "deploy:production")
	if _, err := human.Respond(testContext(t), pending.GetId(), true, "alice", "ok"); err != nil {
		t.Fatal(err)
	}
	if got := string(<-out); got != "approved: true by alice\n" {
		t.Fatalf("the example printed %q", got)
	}
}
