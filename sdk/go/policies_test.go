package approvald_test

// Policies seen from Go, against an approvald of the test's own reading a
// policy file: two votes from two responders approve (both listed), each
// vote before the last is an Updated watch event with a resumable cursor, a
// changed vote or a stale context digest is refused, and an on_timeout =
// "approve" policy lets the gate proceed at the deadline.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	approvald "github.com/approvald/approvald/sdk/go"
	approvalv1 "github.com/approvald/approvald/sdk/go/approval/v1"
)

const testPolicies = `
[[policies]]
approval_types = ["go-vote:*"]
required_approvals = 2

[[policies]]
approval_types = ["go-quiet:*"]
on_timeout = "approve"
default_timeout = "1s"
`

// startWithPolicies starts an approvald of its own (a Redis prefix of its
// own) reading policies as its configuration file; returns its address.
func startWithPolicies(t *testing.T, policies string) string {
	t.Helper()
	config := filepath.Join(t.TempDir(), "approvald.toml")
	if err := os.WriteFile(config, []byte(policies), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startReplica(t, addr, fmt.Sprintf("go-policies-%d", time.Now().UnixNano()), "--config", config)
	return addr
}

func voters(votes []*approvalv1.Vote) []string {
	names := []string{}
	for _, v := range votes {
		names = append(names, v.GetVoter())
	}
	return names
}

func TestTwoVotesFromTwoRespondersApproveWithBothVotesListedAndAChangedVoteIsRefused(t *testing.T) {
	addr := startWithPolicies(t, testPolicies)
	agent, human := dial(t, addr, "go-agent"), dial(t, addr, "go-human")
	ctx := testContext(t)
	created, err := agent.CreateApproval(ctx, approvald.Request{ApprovalType: "go-vote:" + kind(t), Context: map[string]any{"version": "2.4.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if created.GetRequiredApprovals() != 2 || created.GetPolicy().GetName() != "go-vote:*" {
		t.Fatalf("copied policy: required %d, name %q", created.GetRequiredApprovals(), created.GetPolicy().GetName())
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(created.GetContextDigest()) {
		t.Fatalf("context digest %q", created.GetContextDigest())
	}
	decided := make(chan *approvald.Decision, 1)
	go func() {
		d, err := agent.AwaitApproval(ctx, created.GetId())
		if err != nil {
			t.Error(err)
		}
		decided <- d
	}()

	one, err := human.Respond(ctx, created.GetId(), true, "alice", "diff read", approvald.ExpectContextDigest(created.GetContextDigest()))
	if err != nil {
		t.Fatal(err)
	}
	if one.GetStatus() != approvalv1.ApprovalStatus_APPROVAL_STATUS_PENDING {
		t.Fatalf("one approval of two: %v, want still pending", one.GetStatus())
	}
	if v := one.GetVotes(); len(v) != 1 || v[0].GetVoter() != "alice" || v[0].GetDecision() != approvalv1.Decision_DECISION_APPROVE ||
		v[0].GetReason() != "diff read" || v[0].GetVotedAt() == nil {
		t.Fatalf("votes after alice: %v", v)
	}
	_, err = human.Respond(ctx, created.GetId(), false, "alice", "second thoughts")
	var voted *approvald.AlreadyVotedError
	if !errors.As(err, &voted) || voted.Voter != "alice" || voted.Decision != "approve" {
		t.Fatalf("a changed vote: %v, want *AlreadyVotedError naming alice's approve", err)
	}

	if _, err := human.Respond(ctx, created.GetId(), true, "bob", ""); err != nil {
		t.Fatal(err)
	}
	d := <-decided
	if !d.Approved || d.Approval.GetStatus() != approvalv1.ApprovalStatus_APPROVAL_STATUS_APPROVED || d.Approval.GetDecidedBy() != "bob" {
		t.Fatalf("decision: approved %v, status %v, by %q", d.Approved, d.Approval.GetStatus(), d.Approval.GetDecidedBy())
	}
	if got := voters(d.Approval.GetVotes()); strings.Join(got, ",") != "alice,bob" {
		t.Fatalf("votes %v, want alice then bob", got)
	}
}

func TestAStaleContextDigestIsRefusedAndTheVoteIsNotRecorded(t *testing.T) {
	addr := startWithPolicies(t, testPolicies)
	c := dial(t, addr, "go-agent")
	ctx := testContext(t)
	created, err := c.CreateApproval(ctx, approvald.Request{ApprovalType: "go-vote:" + kind(t), Context: map[string]any{"rows": 3}})
	if err != nil {
		t.Fatal(err)
	}
	stale := "sha256:" + strings.Repeat("0", 64)
	_, err = c.Respond(ctx, created.GetId(), true, "alice", "", approvald.ExpectContextDigest(stale))
	var changed *approvald.ContextChangedError
	if !errors.As(err, &changed) || changed.ContextDigest != created.GetContextDigest() || changed.ExpectedContextDigest != stale {
		t.Fatalf("a stale digest: %v, want *ContextChangedError", err)
	}
	now, err := c.GetApproval(ctx, created.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if len(now.GetVotes()) != 0 {
		t.Fatalf("votes %v after a refused vote", now.GetVotes())
	}
}

func TestAWatcherSeesTheFirstVoteAsAnUpdatedEventWhoseCursorResumesTheWatch(t *testing.T) {
	addr := startWithPolicies(t, testPolicies)
	c := dial(t, addr, "go-watcher")
	ctx := testContext(t)
	k := "go-vote:" + kind(t)
	next, stop := events(t, c, &approvalv1.WatchPendingRequest{ApprovalTypes: []string{k}})
	if e := next(); e.Kind != approvald.Synced {
		t.Fatalf("first event %s, want synced", e.Kind)
	}
	created, err := c.CreateApproval(ctx, approvald.Request{ApprovalType: k})
	if err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Kind != approvald.Added || e.Approval.GetId() != created.GetId() {
		t.Fatalf("event %s %s, want added %s", e.Kind, e.Approval.GetId(), created.GetId())
	}
	if _, err := c.Respond(ctx, created.GetId(), true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	updated := next()
	if updated.Kind != approvald.Updated || updated.Approval.GetId() != created.GetId() ||
		updated.Approval.GetStatus() != approvalv1.ApprovalStatus_APPROVAL_STATUS_PENDING {
		t.Fatalf("after the first vote: %s %s %v, want updated, pending", updated.Kind, updated.Approval.GetId(), updated.Approval.GetStatus())
	}
	if got := voters(updated.Approval.GetVotes()); strings.Join(got, ",") != "alice" || updated.Cursor == "" {
		t.Fatalf("updated event: votes %v, cursor %q", got, updated.Cursor)
	}
	if _, err := c.Respond(ctx, created.GetId(), true, "bob", ""); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Kind != approvald.Resolved || e.Approval.GetId() != created.GetId() {
		t.Fatalf("after the second vote: %s, want resolved", e.Kind)
	}
	stop()

	// Resumed from the updated event's cursor: exactly what followed it.
	resumed, _ := events(t, c, &approvalv1.WatchPendingRequest{ApprovalTypes: []string{k}, Cursor: updated.Cursor})
	if e := resumed(); e.Kind != approvald.Resolved || e.Approval.GetStatus() != approvalv1.ApprovalStatus_APPROVAL_STATUS_APPROVED {
		t.Fatalf("after resuming: %s %v, want resolved approved", e.Kind, e.Approval.GetStatus())
	}
}

func TestUnderOnTimeoutApproveTheGateProceedsAtTheDeadlineWithStatusExpired(t *testing.T) {
	addr := startWithPolicies(t, testPolicies)
	agent := dial(t, addr, "go-agent")
	d, err := agent.RequestApproval(testContext(t), approvald.Request{ApprovalType: "go-quiet:" + kind(t)})
	if err != nil {
		t.Fatal(err)
	}
	if d.Approval.GetStatus() != approvalv1.ApprovalStatus_APPROVAL_STATUS_EXPIRED {
		t.Fatalf("status %v, want expired", d.Approval.GetStatus())
	}
	if !d.Approved {
		t.Fatal("nobody objected under on_timeout = approve: Approved must be true")
	}
	if d.Approval.GetOnTimeout() != approvalv1.OnTimeout_ON_TIMEOUT_APPROVE || !strings.Contains(d.Approval.GetReason(), `policy "go-quiet:*"`) {
		t.Fatalf("on_timeout %v, reason %q", d.Approval.GetOnTimeout(), d.Approval.GetReason())
	}
}
