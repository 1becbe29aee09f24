package dev.approvald;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.protobuf.Descriptors.MethodDescriptor;
import io.grpc.MethodDescriptor.MethodType;
import org.junit.jupiter.api.Test;

class ApprovalApiTest {
  /** The hand-declared gRPC methods are exactly the service in proto/, in name, types and kind. */
  @Test
  void everyMethodDescriptorMatchesTheProtoService() {
    assertEquals("approval.v1.ApprovalService", ApprovalApi.SERVICE.getFullName());
    assertEquals(ApprovalApi.SERVICE.getMethods().size(), ApprovalApi.METHODS.size());
    for (int i = 0; i < ApprovalApi.METHODS.size(); i++) {
      io.grpc.MethodDescriptor<?, ?> declared = ApprovalApi.METHODS.get(i);
      MethodDescriptor proto = ApprovalApi.SERVICE.getMethods().get(i);
      assertEquals("approval.v1.ApprovalService/" + proto.getName(), declared.getFullMethodName());
      assertEquals(
          proto.getInputType().getFullName(),
          prototypeName(declared.getRequestMarshaller()),
          proto.getName());
      assertEquals(
          proto.getOutputType().getFullName(),
          prototypeName(declared.getResponseMarshaller()),
          proto.getName());
      MethodType kind =
          proto.isServerStreaming()
              ? (proto.isClientStreaming() ? MethodType.BIDI_STREAMING : MethodType.SERVER_STREAMING)
              : (proto.isClientStreaming() ? MethodType.CLIENT_STREAMING : MethodType.UNARY);
      assertEquals(kind, declared.getType(), proto.getName());
    }
  }

  private static String prototypeName(io.grpc.MethodDescriptor.Marshaller<?> marshaller) {
    @SuppressWarnings("unchecked")
    var proto = (io.grpc.MethodDescriptor.PrototypeMarshaller<com.google.protobuf.Message>) marshaller;
    return proto.getMessagePrototype().getDescriptorForType().getFullName();
  }
}
