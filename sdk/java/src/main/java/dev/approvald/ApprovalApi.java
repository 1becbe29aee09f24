package dev.approvald;

import com.google.protobuf.Message;
import dev.approvald.approval.v1.ApprovalProto;
import dev.approvald.approval.v1.AwaitApprovalRequest;
import dev.approvald.approval.v1.AwaitApprovalResponse;
import dev.approvald.approval.v1.CancelApprovalRequest;
import dev.approvald.approval.v1.CancelApprovalResponse;
import dev.approvald.approval.v1.CreateApprovalRequest;
import dev.approvald.approval.v1.CreateApprovalResponse;
import dev.approvald.approval.v1.GetApprovalRequest;
import dev.approvald.approval.v1.GetApprovalResponse;
import dev.approvald.approval.v1.ListApprovalsRequest;
import dev.approvald.approval.v1.ListApprovalsResponse;
import dev.approvald.approval.v1.RequestApprovalRequest;
import dev.approvald.approval.v1.RequestApprovalResponse;
import dev.approvald.approval.v1.RespondRequest;
import dev.approvald.approval.v1.RespondResponse;
import dev.approvald.approval.v1.WatchPendingRequest;
import dev.approvald.approval.v1.WatchPendingResponse;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.MethodDescriptor;
import io.grpc.MethodDescriptor.MethodType;
import io.grpc.protobuf.ProtoMethodDescriptorSupplier;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ClientCalls;
import java.util.Iterator;
import java.util.List;

/**
 * The gRPC methods of {@code approval.v1.ApprovalService} as a blocking client, for what
 * {@link ApprovalGate} does not wrap.
 *
 * <p>The messages are generated from {@code proto/} by protoc at build time. The method
 * descriptors are declared here with grpc-java's public API (what protoc-gen-grpc-java would
 * generate), because that plugin's executable is not served to this project's machines; a test
 * checks every descriptor against the service in the proto, so the two cannot drift apart.
 */
public final class ApprovalApi {
  /** {@code approval.v1.ApprovalService}, as the proto declares it. */
  public static final com.google.protobuf.Descriptors.ServiceDescriptor SERVICE =
      ApprovalProto.getDescriptor().findServiceByName("ApprovalService");

  public static final MethodDescriptor<RequestApprovalRequest, RequestApprovalResponse>
      REQUEST_APPROVAL =
          unary(
              "RequestApproval",
              RequestApprovalRequest.getDefaultInstance(),
              RequestApprovalResponse.getDefaultInstance());
  public static final MethodDescriptor<CreateApprovalRequest, CreateApprovalResponse>
      CREATE_APPROVAL =
          unary(
              "CreateApproval",
              CreateApprovalRequest.getDefaultInstance(),
              CreateApprovalResponse.getDefaultInstance());
  public static final MethodDescriptor<AwaitApprovalRequest, AwaitApprovalResponse>
      AWAIT_APPROVAL =
          unary(
              "AwaitApproval",
              AwaitApprovalRequest.getDefaultInstance(),
              AwaitApprovalResponse.getDefaultInstance());
  public static final MethodDescriptor<WatchPendingRequest, WatchPendingResponse> WATCH_PENDING =
      method(
          MethodType.SERVER_STREAMING,
          "WatchPending",
          WatchPendingRequest.getDefaultInstance(),
          WatchPendingResponse.getDefaultInstance());
  public static final MethodDescriptor<RespondRequest, RespondResponse> RESPOND =
      unary("Respond", RespondRequest.getDefaultInstance(), RespondResponse.getDefaultInstance());
  public static final MethodDescriptor<GetApprovalRequest, GetApprovalResponse> GET_APPROVAL =
      unary(
          "GetApproval",
          GetApprovalRequest.getDefaultInstance(),
          GetApprovalResponse.getDefaultInstance());
  public static final MethodDescriptor<ListApprovalsRequest, ListApprovalsResponse>
      LIST_APPROVALS =
          unary(
              "ListApprovals",
              ListApprovalsRequest.getDefaultInstance(),
              ListApprovalsResponse.getDefaultInstance());
  public static final MethodDescriptor<CancelApprovalRequest, CancelApprovalResponse>
      CANCEL_APPROVAL =
          unary(
              "CancelApproval",
              CancelApprovalRequest.getDefaultInstance(),
              CancelApprovalResponse.getDefaultInstance());

  /** Every method, in the order the proto declares them. */
  public static final List<MethodDescriptor<?, ?>> METHODS =
      List.of(
          REQUEST_APPROVAL,
          CREATE_APPROVAL,
          AWAIT_APPROVAL,
          WATCH_PENDING,
          RESPOND,
          GET_APPROVAL,
          LIST_APPROVALS,
          CANCEL_APPROVAL);

  private final Channel channel;
  private final CallOptions options;

  /** Calls over {@code channel} with these options (deadline, credentials, ...). */
  public ApprovalApi(Channel channel, CallOptions options) {
    this.channel = channel;
    this.options = options;
  }

  /** The same client with other call options, e.g. {@code options().withDeadline(...)}. */
  public ApprovalApi withOptions(CallOptions options) {
    return new ApprovalApi(channel, options);
  }

  public CallOptions options() {
    return options;
  }

  public RequestApprovalResponse requestApproval(RequestApprovalRequest request) {
    return ClientCalls.blockingUnaryCall(channel, REQUEST_APPROVAL, options, request);
  }

  public CreateApprovalResponse createApproval(CreateApprovalRequest request) {
    return ClientCalls.blockingUnaryCall(channel, CREATE_APPROVAL, options, request);
  }

  public AwaitApprovalResponse awaitApproval(AwaitApprovalRequest request) {
    return ClientCalls.blockingUnaryCall(channel, AWAIT_APPROVAL, options, request);
  }

  /**
   * The stream's responses, blocking in {@code next()}. Run it in a cancellable {@link
   * io.grpc.Context} to stop it early.
   */
  public Iterator<WatchPendingResponse> watchPending(WatchPendingRequest request) {
    return ClientCalls.blockingServerStreamingCall(channel, WATCH_PENDING, options, request);
  }

  public RespondResponse respond(RespondRequest request) {
    return ClientCalls.blockingUnaryCall(channel, RESPOND, options, request);
  }

  public GetApprovalResponse getApproval(GetApprovalRequest request) {
    return ClientCalls.blockingUnaryCall(channel, GET_APPROVAL, options, request);
  }

  public ListApprovalsResponse listApprovals(ListApprovalsRequest request) {
    return ClientCalls.blockingUnaryCall(channel, LIST_APPROVALS, options, request);
  }

  public CancelApprovalResponse cancelApproval(CancelApprovalRequest request) {
    return ClientCalls.blockingUnaryCall(channel, CANCEL_APPROVAL, options, request);
  }

  private static <Q extends Message, R extends Message> MethodDescriptor<Q, R> unary(
      String name, Q request, R response) {
    return method(MethodType.UNARY, name, request, response);
  }

  private static <Q extends Message, R extends Message> MethodDescriptor<Q, R> method(
      MethodType type, String name, Q request, R response) {
    return MethodDescriptor.<Q, R>newBuilder()
        .setType(type)
        .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE.getFullName(), name))
        .setRequestMarshaller(ProtoUtils.marshaller(request))
        .setResponseMarshaller(ProtoUtils.marshaller(response))
        .setSchemaDescriptor(new MethodSchema(name))
        .build();
  }

  /** Lets gRPC tooling (reflection, channelz) find the proto of each method. */
  private static final class MethodSchema implements ProtoMethodDescriptorSupplier {
    private final String name;

    MethodSchema(String name) {
      this.name = name;
    }

    @Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return SERVICE.findMethodByName(name);
    }

    @Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return SERVICE;
    }

    @Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return ApprovalProto.getDescriptor();
    }
  }
}
