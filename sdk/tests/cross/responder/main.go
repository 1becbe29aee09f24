// The responder of the cross-language test: waits for the pending approval of
// one type and approves it, with the Go SDK.
//
// Usage: responder TARGET APPROVAL_TYPE RESPONDER
// Prints the id of the approval it approved.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	approvald "github.com/approvald/approvald/sdk/go"
	approvalv1 "github.com/approvald/approvald/sdk/go/approval/v1"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: responder TARGET APPROVAL_TYPE RESPONDER")
	}
	target, approvalType, responder := os.Args[1], os.Args[2], os.Args[3]
	client, err := approvald.Dial(target)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := pending(ctx, client, approvalType)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Respond(ctx, id, true, responder, "approved from Go"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(id)
}

// pending polls until one approval of the type is pending.
func pending(ctx context.Context, client *approvald.Client, approvalType string) (string, error) {
	filter := &approvalv1.ListApprovalsRequest{
		Statuses:      []approvalv1.ApprovalStatus{approvalv1.ApprovalStatus_APPROVAL_STATUS_PENDING},
		ApprovalTypes: []string{approvalType},
	}
	for {
		for approval, err := range client.ListApprovals(ctx, filter) {
			if err != nil {
				return "", err
			}
			return approval.GetId(), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no pending %s approval: %w", approvalType, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
