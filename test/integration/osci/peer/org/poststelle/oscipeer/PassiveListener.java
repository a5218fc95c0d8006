package org.poststelle.oscipeer;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import de.osci.osci12.common.DialogHandler;
import de.osci.osci12.common.SoapClientException;
import de.osci.osci12.common.SoapServerException;
import de.osci.osci12.messagetypes.AcceptDelivery;
import de.osci.osci12.messagetypes.OSCIMessage;
import de.osci.osci12.messagetypes.OSCIRequest;
import de.osci.osci12.messagetypes.PassiveRecipientParser;
import de.osci.osci12.messagetypes.ProcessDelivery;
import de.osci.osci12.messagetypes.ResponseToAcceptDelivery;
import de.osci.osci12.messagetypes.ResponseToProcessDelivery;
import de.osci.osci12.messagetypes.SOAPFault;
import de.osci.osci12.roles.Addressee;
import de.osci.osci12.roles.Reader;

/**
 * PassiveListener is the library as a passive recipient: an HTTP listener on a loopback address
 * that takes the intermediary's acceptDelivery and processDelivery, answers them signed, and
 * writes each delivery as delivery-N.json (and the library's plaintext copy as request-N.xml).
 */
final class PassiveListener {
  private PassiveListener() {}

  static int run(Options opt, Supplier<Peer.Keys> keys) {
    try {
      return serve(opt, keys.get());
    } catch (IllegalArgumentException e) {
      System.err.println("oscipeer: " + e.getMessage());
      return Peer.EXIT_USAGE;
    } catch (Exception e) {
      Peer.describe(e);
      return 1;
    }
  }

  private static int serve(Options opt, Peer.Keys k) throws Exception {
    String[] hp = opt.value("listen", "127.0.0.1:0").split(":", 2);
    InetAddress host = InetAddress.getByName(hp[0]);
    if (!host.isLoopbackAddress()) throw new IllegalArgumentException("--listen must be a loopback address");
    FileDecrypter dec = k.decrypter("bob_cipher_4096.p12");
    FileSigner sig = k.signer("bob_signature_4096.p12");
    DialogHandler.setSignatureAlgorithm(sig.getAlgorithm());
    Addressee me = new Addressee(sig, dec);
    DialogHandler.setDefaultSupplier(me);
    Reader reader = new Reader(dec);
    Path out = Paths.get(opt.require("out-dir"));
    Files.createDirectories(out);
    int count = opt.intValue("count", 1);
    long maxBytes = Long.parseLong(opt.value("max-bytes", String.valueOf(256L << 20)));
    String feedback = opt.value("feedback", "0800");
    CountDownLatch done = new CountDownLatch(count);
    AtomicInteger seq = new AtomicInteger();

    HttpServer srv = HttpServer.create(new InetSocketAddress(host, Integer.parseInt(hp[1])), 0);
    srv.createContext("/", ex -> {
      int n = seq.incrementAndGet();
      try {
        handle(ex, n, out, reader, feedback, maxBytes);
      } catch (Exception e) {
        Peer.describe(e);
      } finally {
        ex.close();
        done.countDown();
      }
    });
    srv.start();
    String url = "http://" + host.getHostAddress() + ":" + srv.getAddress().getPort() + "/";
    if (opt.has("ready")) Files.writeString(Paths.get(opt.value("ready", null)), url + "\n");
    System.err.println("oscipeer: passive recipient listening on " + url);
    boolean all = done.await(opt.intValue("wait-seconds", 600), TimeUnit.SECONDS);
    srv.stop(0);
    return all ? 0 : 1;
  }

  private static void handle(HttpExchange ex, int n, Path out, Reader reader, String feedback, long maxBytes)
      throws Exception {
    Map<String, Object> doc = new LinkedHashMap<>();
    doc.put("mode", "passive");
    doc.put("request", n);
    doc.put("httpMethod", ex.getRequestMethod());
    doc.put("contentType", ex.getRequestHeaders().getFirst("Content-Type"));
    Path jsonPath = out.resolve("delivery-" + n + ".json");
    if (!"POST".equals(ex.getRequestMethod())) {
      doc.put("error", "not a POST");
      ex.sendResponseHeaders(405, -1);
      Peer.emit(jsonPath.toString(), doc);
      return;
    }
    OSCIRequest req;
    try (OutputStream store = Files.newOutputStream(out.resolve("request-" + n + ".xml"))) {
      req = new PassiveRecipientParser().parseStream(new Capped(ex.getRequestBody(), maxBytes), store);
    } catch (SoapClientException | SoapServerException e) {
      doc.put("error", Peer.describe(e));
      Peer.emit(jsonPath.toString(), doc);
      fault(ex, e.getErrorCode());
      return;
    }
    doc.put("messageType", req.getMessageType());
    OutputStream body;
    switch (req.getMessageType()) {
      case OSCIMessage.ACCEPT_DELIVERY: {
        AcceptDelivery a = (AcceptDelivery) req;
        doc.put("type", "acceptDelivery");
        doc.put("signedRequest", a.isSigned());
        doc.putAll(Delivery.describe(a.getMessageId(), a.getSubject(), a.getContentContainer(), a.getEncryptedData(),
            reader, out.resolve("delivery-" + n)));
        doc.put("processCard", Peer.processCard(a.getProcessCardBundle()));
        ResponseToAcceptDelivery r = new ResponseToAcceptDelivery(a);
        r.setFeedback(new String[] {feedback});
        if (a.isSigned()) r.sign();
        Peer.emit(jsonPath.toString(), doc);
        ex.getResponseHeaders().set("Content-Type", "text/xml; charset=UTF-8");
        ex.sendResponseHeaders(200, 0);
        body = ex.getResponseBody();
        r.writeToStream(body, null);
        break;
      }
      case OSCIMessage.PROCESS_DELIVERY: {
        ProcessDelivery p = (ProcessDelivery) req;
        doc.put("type", "processDelivery");
        doc.put("signedRequest", p.isSigned());
        doc.putAll(Delivery.describe(p.getMessageId(), p.getSubject(), p.getContentContainer(), p.getEncryptedData(),
            reader, out.resolve("delivery-" + n)));
        doc.put("processCard", Peer.processCard(p.getProcessCardBundle()));
        ResponseToProcessDelivery r = new ResponseToProcessDelivery(p);
        if (p.getMessageId() != null) r.setMessageId(p.getMessageIdResponse());
        r.setFeedback(new String[] {feedback});
        if (p.isSigned()) r.sign();
        Peer.emit(jsonPath.toString(), doc);
        ex.getResponseHeaders().set("Content-Type", "text/xml; charset=UTF-8");
        ex.sendResponseHeaders(200, 0);
        body = ex.getResponseBody();
        r.writeToStream(body, null);
        break;
      }
      default:
        doc.put("error", "unexpected message type " + req.getMessageType());
        Peer.emit(jsonPath.toString(), doc);
        fault(ex, "9100");
        return;
    }
    body.close();
  }

  private static void fault(HttpExchange ex, String code) throws IOException {
    ex.getResponseHeaders().set("Content-Type", "text/xml; charset=UTF-8");
    ex.sendResponseHeaders(200, 0);
    try (OutputStream o = ex.getResponseBody()) {
      new SOAPFault(code).writeToStream(o);
    }
  }

  /** Capped fails a read past max bytes, so a hostile sender cannot fill the disk or memory. */
  static final class Capped extends FilterInputStream {
    private final long max;
    private long n;

    Capped(InputStream in, long max) {
      super(in);
      this.max = max;
    }

    @Override
    public int read() throws IOException {
      int b = super.read();
      if (b >= 0 && ++n > max) throw new IOException("request larger than " + max + " bytes");
      return b;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      int r = super.read(b, off, len);
      if (r > 0 && (n += r) > max) throw new IOException("request larger than " + max + " bytes");
      return r;
    }
  }
}
