package approvald_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	approvald "github.com/approvald/approvald/sdk/go"
	approvalv1 "github.com/approvald/approvald/sdk/go/approval/v1"
)

// secured is an approvald of its own (in-memory store) with authentication
// on. Principals: release-bot (requester), alice (approver of deploy:*),
// carol (requester and approver of deploy:*).
type secured struct {
	addr                             string
	botToken, aliceToken, carolToken string
	caFile                           string // the server's self-signed certificate, with TLS
}

func startSecured(t *testing.T, withTLS bool) *secured {
	t.Helper()
	bin := os.Getenv("APPROVALD_BIN")
	if bin == "" {
		t.Fatal("APPROVALD_BIN is not set: run scripts/suites/42-sdk-go.sh")
	}
	dir := t.TempDir()
	s := &secured{
		aliceToken: "alice-" + randomHex(t),
		carolToken: "carol-" + randomHex(t),
	}
	// One token as operators make them, the others hashed here: the file
	// holds the hex sha256 of the token.
	out, err := exec.Command(bin, "new-token").Output()
	if err != nil {
		t.Fatal(err)
	}
	var botSHA string
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			switch k {
			case "token":
				s.botToken = strings.TrimSpace(v)
			case "sha256":
				botSHA = strings.TrimSpace(v)
			}
		}
	}
	auth := fmt.Sprintf(`[[tokens]]
principal = "release-bot"
roles = ["requester"]
sha256 = %q

[[tokens]]
principal = "alice"
roles = ["approver:deploy:*"]
sha256 = %q

[[tokens]]
principal = "carol"
roles = ["requester", "approver:deploy:*"]
sha256 = %q
`, botSHA, sha(s.aliceToken), sha(s.carolToken))
	if err := os.WriteFile(filepath.Join(dir, "auth.toml"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	args := []string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--auth-config", filepath.Join(dir, "auth.toml"),
		"--shutdown-grace", "1s",
	}
	s.addr = fmt.Sprintf("127.0.0.1:%d", port)
	if withTLS {
		s.caFile = filepath.Join(dir, "server.pem")
		key := filepath.Join(dir, "server.key")
		openssl := exec.Command("openssl", "req", "-x509", "-newkey", "ec",
			"-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
			"-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
			"-keyout", key, "-out", s.caFile)
		if b, err := openssl.CombinedOutput(); err != nil {
			t.Fatalf("openssl: %v\n%s", err, b)
		}
		args = append(args, "--tls-cert-file", s.caFile, "--tls-key-file", key)
		// The certificate names localhost, not 127.0.0.1.
		s.addr = fmt.Sprintf("localhost:%d", port)
	}
	logFile, err := os.Create(filepath.Join(dir, "approvald.log"))
	if err != nil {
		t.Fatal(err)
	}
	server := exec.Command(bin, args...)
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = server.Process.Signal(os.Interrupt)
		_ = server.Wait()
		logFile.Close()
	})
	// Serving once a TCP connection is accepted (the port is bound last).
	for i := 0; ; i++ {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			return s
		}
		if i == 300 {
			b, _ := os.ReadFile(filepath.Join(dir, "approvald.log"))
			t.Fatalf("approvald did not start:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *secured) dial(t *testing.T, opts ...approvald.Option) *approvald.Client {
	t.Helper()
	if s.caFile != "" {
		opts = append(opts, approvald.WithTLS(s.caFile, "", ""))
	}
	c, err := approvald.Dial(s.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTheRequesterIsTheTokensPrincipalAndTheDeciderTheApprovers(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			s := startSecured(t, withTLS)
			bot := s.dial(t, approvald.WithToken(s.botToken), approvald.WithAgentID("claims-to-be-alice"))
			alice := s.dial(t, approvald.WithToken(s.aliceToken))
			ctx, k := testContext(t), "deploy:"+randomHex(t)

			done := make(chan *approvald.Decision, 1)
			go func() {
				d, err := bot.RequestApproval(ctx, approvald.Request{ApprovalType: k, Timeout: time.Minute})
				if err != nil {
					t.Error(err)
				}
				done <- d
			}()
			pending := pendingOf(t, alice, k)
			if pending.GetRequester() != "release-bot" {
				t.Fatalf("requester %q, want release-bot", pending.GetRequester())
			}
			if _, err := alice.Respond(ctx, pending.GetId(), true, "someone-else", "checked"); err != nil {
				t.Fatal(err)
			}
			d := <-done
			if d == nil || !d.Approved || d.Approval.GetDecidedBy() != "alice" {
				t.Fatalf("decision %v, want approved by alice", d)
			}
		})
	}
}

func TestWithoutATokenCallsAreUnauthenticated(t *testing.T) {
	s := startSecured(t, false)
	anonymous := s.dial(t)
	ctx := testContext(t)
	_, err := anonymous.CreateApproval(ctx, approvald.Request{ApprovalType: "deploy:x"})
	if !errors.Is(err, approvald.ErrUnauthenticated) || status.Code(err) != codes.Unauthenticated {
		t.Fatalf("create without a token: %v", err)
	}
	_, err = anonymous.RequestApproval(ctx, approvald.Request{ApprovalType: "deploy:x"})
	if !errors.Is(err, approvald.ErrUnauthenticated) {
		t.Fatalf("request without a token: %v", err)
	}
	for _, err := range anonymous.WatchPending(ctx, &approvalv1.WatchPendingRequest{}) {
		if !errors.Is(err, approvald.ErrUnauthenticated) {
			t.Fatalf("watch without a token: %v", err)
		}
		break
	}
	stranger := s.dial(t, approvald.WithToken("not-a-known-token"))
	for _, err := range stranger.ListApprovals(ctx, &approvalv1.ListApprovalsRequest{}) {
		if !errors.Is(err, approvald.ErrUnauthenticated) {
			t.Fatalf("list with an unknown token: %v", err)
		}
	}
}

func TestARequesterCannotApproveItsOwnRequest(t *testing.T) {
	s := startSecured(t, true)
	carol := s.dial(t, approvald.WithToken(s.carolToken))
	alice := s.dial(t, approvald.WithToken(s.aliceToken))
	ctx := testContext(t)
	own, err := carol.CreateApproval(ctx, approvald.Request{ApprovalType: "deploy:" + randomHex(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = carol.Respond(ctx, own.GetId(), true, "carol", "")
	if !errors.Is(err, approvald.ErrPermissionDenied) || status.Code(err) != codes.PermissionDenied {
		t.Fatalf("self-approval: %v", err)
	}
	if got, err := alice.GetApproval(ctx, own.GetId()); err != nil || got.GetStatus() != approvalv1.ApprovalStatus_APPROVAL_STATUS_PENDING {
		t.Fatalf("after the refusal: %v, %v", got, err)
	}
}

func TestBadCredentialOptionsFailDial(t *testing.T) {
	if _, err := approvald.Dial("127.0.0.1:1", approvald.WithToken("")); err == nil {
		t.Fatal("an empty token was accepted")
	}
	if _, err := approvald.Dial("127.0.0.1:1", approvald.WithTLS("", "client.pem", "")); err == nil {
		t.Fatal("a client certificate without its key was accepted")
	}
	if _, err := approvald.Dial("127.0.0.1:1", approvald.WithTLS("/nonexistent/ca.pem", "", "")); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

func sha(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomHex(t *testing.T) string {
	return sha(fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()))[:16]
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
