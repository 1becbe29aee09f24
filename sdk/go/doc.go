// Package approvald is the Go client for approvald, human approval gates as a
// service: an agent calls RequestApproval and blocks until a human approves or
// rejects, or the approval's deadline passes; humans watch WatchPending and
// decide with Respond.
//
// The generated protobuf and gRPC code is the package
// github.com/approvald/approvald/sdk/go/approval/v1 (regenerate it with
// scripts/generate at the repository root).
package approvald
