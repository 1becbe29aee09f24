package approvald_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeBlock is the README block after "<!-- marker -->", fenced as lang.
func readmeBlock(t *testing.T, marker, lang string) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	match := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(marker) + " -->\n```" + lang + "\n(.*?)```").FindSubmatch(readme)
	if match == nil {
		t.Fatalf("README.md has no %s block", marker)
	}
	return string(match[1])
}

// runWhileApproving runs a README example program against addr while each
// of voters approves the deploy:production approval it waits for there, and
// returns what it printed.
func runWhileApproving(t *testing.T, program, addr string, voters ...string) string {
	t.Helper()
	// Inside the module, so that it builds against this very package.
	dir, err := os.MkdirTemp(".", "readme-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	program = strings.ReplaceAll(program, "127.0.0.1:50051", addr)
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
	human := dial(t, addr, "go-human")
	pending := pendingOf(t, human, "deploy:production")
	for _, voter := range voters {
		if _, err := human.Respond(testContext(t), pending.GetId(), true, voter, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	return string(<-out)
}

// The README's example program runs as written (but for the address) and
// prints the decision a human made meanwhile.
func TestReadmeExampleRuns(t *testing.T) {
	if got := runWhileApproving(t, readmeBlock(t, "example", "go"), addrA, "alice"); got != "approved: true by alice\n" {
		t.Fatalf("the example printed %q", got)
	}
}

// The README's votes example, under the README's policy, prints both voters.
func TestReadmeVotesExampleRunsUnderTheReadmePolicy(t *testing.T) {
	addr := startWithPolicies(t, readmeBlock(t, "policy", "toml"))
	got := runWhileApproving(t, readmeBlock(t, "example: votes", "go"), addr, "alice", "bob")
	if got != "approved: true by alice and bob (2 needed)\n" {
		t.Fatalf("the example printed %q", got)
	}
}
