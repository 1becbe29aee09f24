package approvald_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	approvald "github.com/approvald/approvald/sdk/go"
	approvalv1 "github.com/approvald/approvald/sdk/go/approval/v1"
)

// The suite (scripts/suites/42-sdk-go.sh) starts Redis and two replicas on it.
var addrA, addrB string

func TestMain(m *testing.M) {
	addrA, addrB = os.Getenv("APPROVALD_ADDR_A"), os.Getenv("APPROVALD_ADDR_B")
	if addrA == "" || addrB == "" {
		fmt.Fprintln(os.Stderr, "APPROVALD_ADDR_A and APPROVALD_ADDR_B are not set: run scripts/suites/42-sdk-go.sh")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func dial(t *testing.T, addr, agent string) *approvald.Client {
	t.Helper()
	c, err := approvald.Dial(addr, approvald.WithAgentID(agent))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// kind is an approval type that no other test uses.
func kind(t *testing.T) string {
	return fmt.Sprintf("test.go.%s.%d", t.Name(), time.Now().UnixNano())
}

// pendingOf waits (bounded) until an approval of type kind is pending.
func pendingOf(t *testing.T, c *approvald.Client, kind string) *approvalv1.Approval {
	t.Helper()
	for range 400 {
		for a, err := range c.ListApprovals(testContext(t), &approvalv1.ListApprovalsRequest{ApprovalTypes: []string{kind}}) {
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s approval became pending", kind)
	return nil
}

func TestRequestApprovalReturnsTheDecisionMadeOnAnotherReplica(t *testing.T) {
	agent, human, k := dial(t, addrA, "go-agent"), dial(t, addrB, "go-human"), kind(t)
	done := make(chan *approvald.Decision, 1)
	go func() {
		d, err := agent.RequestApproval(testContext(t), approvald.Request{
			ApprovalType: k, Context: map[string]any{"version": "2.0"}, Timeout: time.Minute,
		})
		if err != nil {
			t.Error(err)
		}
		done <- d
	}()
	pending := pendingOf(t, human, k)
	if got := pending.GetContext().AsMap()["version"]; got != "2.0" || pending.GetAgentId() != "go-agent" {
		t.Fatalf("pending approval = %v", pending)
	}
	if _, err := human.Respond(testContext(t), pending.GetId(), true, "alice", "ship it"); err != nil {
		t.Fatal(err)
	}
	d := <-done
	if !d.Approved || d.Approval.GetDecidedBy() != "alice" || d.Approval.GetReason() != "ship it" {
		t.Fatalf("decision = %+v", d)
	}
}

func TestRequestApprovalHonoursTheContextDeadlineAndReattachesByIdempotencyKey(t *testing.T) {
	agent, human, k := dial(t, addrA, "go-agent"), dial(t, addrB, "go-human"), kind(t)
	request := approvald.Request{ApprovalType: k, Timeout: time.Minute, IdempotencyKey: "go-deploy-1"}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := agent.RequestApproval(short, request); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	pending := pendingOf(t, human, k)
	if pending.GetStatus() != approvalv1.ApprovalStatus_APPROVAL_STATUS_PENDING {
		t.Fatalf("the approval did not stay pending: %v", pending)
	}
	if _, err := human.Respond(testContext(t), pending.GetId(), false, "bob", "not now"); err != nil {
		t.Fatal(err)
	}
	d, err := agent.RequestApproval(testContext(t), request)
	if err != nil {
		t.Fatal(err)
	}
	if d.Approval.GetId() != pending.GetId() || d.Approved || d.Approval.GetReason() != "not now" {
		t.Fatalf("re-attached decision = %+v", d)
	}
}

func TestAnExpiredApprovalIsNotApprovedAndSaysWhy(t *testing.T) {
	agent := dial(t, addrA, "go-agent")
	d, err := agent.RequestApproval(testContext(t), approvald.Request{ApprovalType: kind(t), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if d.Approved || d.Approval.GetStatus() != approvalv1.ApprovalStatus_APPROVAL_STATUS_EXPIRED ||
		d.Approval.GetReason() != "deadline passed before a decision" {
		t.Fatalf("decision = %+v", d)
	}
}

func TestCreateApprovalWithoutKeyOrTimeoutSendsAMadeUpKeyAndGetsTheServersDefault(t *testing.T) {
	want, err := strconv.Atoi(os.Getenv("APPROVALD_DEFAULT_TIMEOUT_SECONDS"))
	if err != nil {
		t.Fatalf("APPROVALD_DEFAULT_TIMEOUT_SECONDS: %v (run scripts/suites/42-sdk-go.sh)", err)
	}
	agent := dial(t, addrA, "go-agent")
	a, err := agent.CreateApproval(testContext(t), approvald.Request{ApprovalType: kind(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := agent.CreateApproval(testContext(t), approvald.Request{ApprovalType: kind(t)})
	if err != nil {
		t.Fatal(err)
	}
	if a.GetIdempotencyKey() == "" || a.GetIdempotencyKey() == b.GetIdempotencyKey() {
		t.Fatalf("idempotency keys %q and %q: want two different made-up keys", a.GetIdempotencyKey(), b.GetIdempotencyKey())
	}
	open := a.GetDeadline().AsTime().Sub(a.GetCreatedAt().AsTime())
	if d := open - time.Duration(want)*time.Second; d < -time.Second || d > time.Second {
		t.Fatalf("deadline %v after creation; the server's default is %ds", open, want)
	}
}

func TestAConflictingResponseIsRefusedAndNamesTheWinner(t *testing.T) {
	agent, human := dial(t, addrA, "go-agent"), dial(t, addrB, "go-human")
	a, err := agent.CreateApproval(testContext(t), approvald.Request{ApprovalType: kind(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := human.Respond(testContext(t), a.GetId(), true, "alice", "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := human.Respond(testContext(t), a.GetId(), true, "alice", "ok"); err != nil {
		t.Fatalf("an identical retry failed: %v", err)
	}
	_, err = agent.Respond(testContext(t), a.GetId(), false, "mallory", "no")
	var refused *approvald.AlreadyDecidedError
	if !errors.As(err, &refused) || refused.DecidedBy != "alice" || refused.Status != "approved" {
		t.Fatalf("err = %#v, want AlreadyDecidedError naming alice", err)
	}
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("code = %v", status.Code(err))
	}
	final, err := agent.AwaitApproval(testContext(t), a.GetId())
	if err != nil || !final.Approved {
		t.Fatalf("await = %+v, %v", final, err)
	}
}

func TestBadInputAndUnknownIdsAreRefusedPrecisely(t *testing.T) {
	c := dial(t, addrA, "go-agent")
	_, err := c.CreateApproval(testContext(t), approvald.Request{ApprovalType: ""})
	var bad *approvald.InvalidArgumentError
	if !errors.As(err, &bad) || bad.Field != "approval_type" {
		t.Fatalf("err = %#v, want InvalidArgumentError on approval_type", err)
	}
	_, err = c.GetApproval(testContext(t), "0190f0e0-0000-7000-8000-000000000000")
	if !errors.Is(err, approvald.ErrUnknownApproval) || status.Code(err) != codes.NotFound {
		t.Fatalf("err = %v, want ErrUnknownApproval", err)
	}
}

func TestWatchPendingGivesSnapshotSyncedLiveEventsAndResumesByCursorOnAnotherReplica(t *testing.T) {
	a, b, k := dial(t, addrA, "go-agent"), dial(t, addrB, "go-human"), kind(t)
	first, err := a.CreateApproval(testContext(t), approvald.Request{ApprovalType: k})
	if err != nil {
		t.Fatal(err)
	}
	var seen []approvald.Event
	var second *approvalv1.Approval
	for event, err := range a.WatchPending(testContext(t), &approvalv1.WatchPendingRequest{ApprovalTypes: []string{k}}) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, event)
		if event.Kind == approvald.Synced {
			if second, err = a.CreateApproval(testContext(t), approvald.Request{ApprovalType: k}); err != nil {
				t.Fatal(err)
			}
		}
		if len(seen) == 3 {
			break
		}
	}
	if seen[0].Kind != approvald.Added || seen[0].Approval.GetId() != first.GetId() || seen[0].Cursor != "" ||
		seen[1].Kind != approvald.Synced || seen[1].Cursor == "" ||
		seen[2].Kind != approvald.Added || seen[2].Approval.GetId() != second.GetId() || seen[2].Cursor == "" {
		t.Fatalf("events = %+v", seen)
	}
	// Missed while nobody watched: first approved. Resume on the other replica.
	if _, err := b.Respond(testContext(t), first.GetId(), true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	for event, err := range b.WatchPending(testContext(t), &approvalv1.WatchPendingRequest{ApprovalTypes: []string{k}, Cursor: seen[2].Cursor}) {
		if err != nil {
			t.Fatal(err)
		}
		if event.Kind != approvald.Resolved || event.Approval.GetId() != first.GetId() ||
			event.Approval.GetStatus() != approvalv1.ApprovalStatus_APPROVAL_STATUS_APPROVED {
			t.Fatalf("first event after resume = %+v", event)
		}
		break
	}
}

func TestListApprovalsPagesThroughEveryMatch(t *testing.T) {
	c, k := dial(t, addrA, "go-agent"), kind(t)
	for range 5 {
		if _, err := c.CreateApproval(testContext(t), approvald.Request{ApprovalType: k}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, err := range c.ListApprovals(testContext(t), &approvalv1.ListApprovalsRequest{ApprovalTypes: []string{k}, PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("listed %d approvals, want 5", n)
	}
}
