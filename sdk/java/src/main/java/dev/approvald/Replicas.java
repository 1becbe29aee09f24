package dev.approvald;

import io.grpc.EquivalentAddressGroup;
import io.grpc.NameResolver;
import io.grpc.NameResolverProvider;
import io.grpc.NameResolverRegistry;
import io.grpc.StatusOr;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;

/**
 * A fixed list of replicas as one gRPC target, "host:port,host:port" (the form the other SDKs
 * write "ipv4:host:port,host:port"): the channel connects to the first that answers and, after
 * losing it, to any other, so that a blocked call re-attaches elsewhere.
 */
final class Replicas extends NameResolverProvider {
  static final String SCHEME = "approvald-replicas";
  private static final Replicas INSTANCE = new Replicas();

  static {
    NameResolverRegistry.getDefaultRegistry().register(INSTANCE);
  }

  /** The channel target for {@code target}: itself unless it lists several replicas. */
  static String channelTarget(String target) {
    String list = target.startsWith("ipv4:") ? target.substring("ipv4:".length()) : target;
    if (!list.contains(",")) {
      return target;
    }
    addresses(list); // fail early on a bad list
    return SCHEME + ":///" + list;
  }

  private static List<EquivalentAddressGroup> addresses(String list) {
    List<EquivalentAddressGroup> groups = new ArrayList<>();
    for (String address : list.split(",")) {
      int colon = address.lastIndexOf(':');
      if (colon <= 0) {
        throw new IllegalArgumentException("not host:port: " + address);
      }
      String host = address.substring(0, colon).replace("[", "").replace("]", "");
      int port = Integer.parseInt(address.substring(colon + 1));
      groups.add(new EquivalentAddressGroup(new InetSocketAddress(host, port)));
    }
    return groups;
  }

  @Override
  protected boolean isAvailable() {
    return true;
  }

  @Override
  protected int priority() {
    return 1; // below dns (5), which stays the default scheme
  }

  @Override
  public String getDefaultScheme() {
    return SCHEME;
  }

  @Override
  public NameResolver newNameResolver(URI uri, NameResolver.Args args) {
    if (!SCHEME.equals(uri.getScheme())) {
      return null;
    }
    List<EquivalentAddressGroup> groups = addresses(uri.getPath().substring(1));
    return new NameResolver() {
      @Override
      public String getServiceAuthority() {
        // A list of addresses is no valid :authority.
        return "approvald";
      }

      @Override
      public void start(Listener2 listener) {
        listener.onResult(ResolutionResult.newBuilder().setAddressesOrError(StatusOr.fromValue(groups)).build());
      }

      @Override
      public void shutdown() {}
    };
  }
}
