package org.poststelle.oscipeer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import de.osci.osci12.messageparts.Attachment;
import de.osci.osci12.messageparts.Content;
import de.osci.osci12.messageparts.ContentContainer;
import de.osci.osci12.messageparts.EncryptedDataOSCI;
import de.osci.osci12.roles.Reader;

/** Delivery turns what a recipient received into JSON: contents, attachments, signature checks. */
final class Delivery {
  private Delivery() {}

  static Map<String, Object> describe(String messageId, String subject, ContentContainer[] plain,
      EncryptedDataOSCI[] encrypted, Reader reader, Path outDir) throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("messageId", messageId);
    m.put("subject", subject);
    List<Object> containers = new ArrayList<>();
    if (plain != null) for (ContentContainer cc : plain) containers.add(container(cc, null, outDir));
    if (encrypted != null) {
      for (EncryptedDataOSCI ed : encrypted) {
        String alg = ed.getSymEncryptionMethod();
        try {
          containers.add(container(ed.decrypt(reader), alg, outDir));
        } catch (Exception e) {
          Map<String, Object> failed = new LinkedHashMap<>();
          failed.put("encryption", alg);
          failed.put("decryptError", e.getClass().getName() + ": " + e.getMessage());
          containers.add(failed);
        }
      }
    }
    m.put("containers", containers);
    return m;
  }

  static Map<String, Object> container(ContentContainer cc, String encryption, Path outDir) throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("refId", cc.getRefID());
    m.put("encryption", encryption);
    List<Object> contents = new ArrayList<>();
    for (Content c : cc.getContents()) contents.add(content(c, outDir));
    m.put("contents", contents);
    m.put("signatures", Peer.signatures(cc));
    return m;
  }

  private static Map<String, Object> content(Content c, Path outDir) throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    switch (c.getContentType()) {
      case Content.DATA:
        m.put("type", "data");
        m.put("refId", c.getRefID());
        m.put("text", c.getContentData());
        break;
      case Content.ATTACHMENT_REFERENCE:
        m.put("type", "attachment");
        m.putAll(attachment(c.getAttachment(), outDir));
        break;
      case Content.CONTENT_CONTAINER:
        m.put("type", "container");
        m.put("container", container(c.getContentContainer(), null, outDir));
        break;
      default:
        m.put("type", "unknown " + c.getContentType());
    }
    return m;
  }

  private static Map<String, Object> attachment(Attachment a, Path outDir) throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("refId", a.getRefID());
    m.put("contentType", a.getContentType());
    m.put("encrypted", a.isEncrypted());
    MessageDigest d = MessageDigest.getInstance("SHA-256");
    long n = 0;
    // The passive listener names a directory per delivery without making it.
    if (outDir != null) Files.createDirectories(outDir);
    OutputStream file = outDir == null ? null : Files.newOutputStream(outDir.resolve(safeName(a.getRefID())));
    try (InputStream in = a.getStream()) {
      byte[] buf = new byte[64 * 1024];
      int r;
      while ((r = in.read(buf)) > 0) {
        d.update(buf, 0, r);
        if (file != null) file.write(buf, 0, r);
        n += r;
      }
    } finally {
      if (file != null) file.close();
    }
    m.put("length", n);
    m.put("sha256", Peer.hex(d.digest()));
    return m;
  }

  /** safeName keeps a sender-chosen reference from naming a path outside the output directory. */
  static String safeName(String ref) throws IOException {
    String s = ref == null ? "attachment" : ref.replaceAll("[^A-Za-z0-9._-]", "_");
    if (s.isEmpty() || s.startsWith(".")) s = "_" + s;
    return s;
  }
}
