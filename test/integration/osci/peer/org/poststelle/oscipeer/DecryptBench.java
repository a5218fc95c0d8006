package org.poststelle.oscipeer;

import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import java.util.stream.Stream;

import de.osci.osci12.common.DialogHandler;
import de.osci.osci12.messageparts.Content;
import de.osci.osci12.messageparts.ContentContainer;
import de.osci.osci12.messageparts.EncryptedDataOSCI;
import de.osci.osci12.messageparts.OSCISignature;
import de.osci.osci12.messagetypes.AcceptDelivery;
import de.osci.osci12.messagetypes.OSCIRequest;
import de.osci.osci12.messagetypes.PassiveRecipientParser;
import de.osci.osci12.roles.Addressee;
import de.osci.osci12.roles.Reader;

/**
 * DecryptBench is the library's side of test/integration/osci/bench: it parses the acceptDelivery
 * files of --frames-dir as a passive recipient does (transport decryption, the intermediary's
 * signature), decrypts each content container for bob, reads every attachment's plaintext and
 * checks the authors' signatures, on --threads threads. Each run reports wall time and the JVM's
 * process CPU time (every thread, GC and JIT included, as the gateway's getrusage does), after a
 * warm-up pass over --warmup messages that is not counted.
 */
final class DecryptBench {
  private DecryptBench() {}

  static int run(Options opt, Supplier<Peer.Keys> keys) {
    try {
      return bench(opt, keys.get());
    } catch (IllegalArgumentException e) {
      System.err.println("oscipeer: " + e.getMessage());
      return Peer.EXIT_USAGE;
    } catch (Exception e) {
      System.err.println("oscipeer: decrypt-bench: " + Peer.describe(e));
      return 1;
    }
  }

  private static int bench(Options opt, Peer.Keys k) throws Exception {
    FileDecrypter dec = k.decrypter("bob_cipher_4096.p12");
    FileSigner sig = k.signer("bob_signature_4096.p12");
    DialogHandler.setSignatureAlgorithm(sig.getAlgorithm());
    DialogHandler.setDefaultSupplier(new Addressee(sig, dec));
    Reader reader = new Reader(dec);
    List<Path> frames;
    try (Stream<Path> s = Files.list(Paths.get(opt.require("frames-dir")))) {
      frames = s.filter(Files::isRegularFile).sorted().toList();
    }
    if (frames.isEmpty()) throw new IllegalArgumentException("no frames in --frames-dir");
    int warmup = Math.min(opt.intValue("warmup", 8), frames.size());
    for (int i = 0; i < warmup; i++) one(frames.get(i), reader);
    Map<String, Object> doc = new LinkedHashMap<>();
    doc.put("mode", "decrypt-bench");
    doc.put("messages", frames.size());
    doc.put("warmup", warmup);
    List<Object> runs = new ArrayList<>();
    for (String t : opt.value("threads", "1,2").split(",")) runs.add(timed(frames, reader, Integer.parseInt(t.trim())));
    doc.put("runs", runs);
    Peer.emit(opt.value("out", null), doc);
    return 0;
  }

  private static Map<String, Object> timed(List<Path> frames, Reader reader, int threads) throws Exception {
    com.sun.management.OperatingSystemMXBean os =
        (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    AtomicInteger next = new AtomicInteger();
    long cpu0 = os.getProcessCpuTime(), t0 = System.nanoTime();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    List<Future<Integer>> done = new ArrayList<>();
    for (int i = 0; i < threads; i++) {
      done.add(pool.submit(() -> {
        int valid = 0;
        for (int j; (j = next.getAndIncrement()) < frames.size(); ) valid += one(frames.get(j), reader);
        return valid;
      }));
    }
    int valid = 0;
    for (Future<Integer> f : done) valid += f.get();
    pool.shutdown();
    long wall = System.nanoTime() - t0, cpu = os.getProcessCpuTime() - cpu0;
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("threads", threads);
    m.put("validSignatures", valid);
    m.put("wallSeconds", wall / 1e9);
    m.put("cpuSeconds", cpu / 1e9);
    m.put("cpuPerMessageMs", cpu / 1e6 / frames.size());
    m.put("messagesPerSecond", frames.size() / (wall / 1e9));
    return m;
  }

  /** one opens one delivery and returns how many of its content signatures held. */
  private static int one(Path frame, Reader reader) throws Exception {
    OSCIRequest req;
    try (InputStream in = Files.newInputStream(frame)) {
      req = new PassiveRecipientParser().parseStream(in, OutputStream.nullOutputStream());
    }
    if (!(req instanceof AcceptDelivery)) throw new IllegalStateException(frame + ": not an acceptDelivery");
    AcceptDelivery a = (AcceptDelivery) req;
    int valid = 0;
    EncryptedDataOSCI[] enc = a.getEncryptedData();
    if (enc == null || enc.length == 0) throw new IllegalStateException(frame + ": no encrypted content");
    for (EncryptedDataOSCI ed : enc) {
      ContentContainer cc = ed.decrypt(reader);
      // The signatures first: checkSignature hashes the attachments itself.
      OSCISignature[] sigs = cc.getSignatures();
      if (sigs != null) {
        for (OSCISignature s : sigs) {
          if (s.getSigner() != null && cc.checkSignature(s.getSigner())) valid++;
        }
      }
      for (Content c : cc.getContents()) {
        if (c.getContentType() == Content.ATTACHMENT_REFERENCE) drain(c.getAttachment().getStream());
      }
    }
    return valid;
  }

  private static void drain(InputStream in) throws Exception {
    MessageDigest d = MessageDigest.getInstance("SHA-256");
    try (in) {
      byte[] buf = new byte[64 * 1024];
      for (int r; (r = in.read(buf)) > 0; ) d.update(buf, 0, r);
    }
  }
}
