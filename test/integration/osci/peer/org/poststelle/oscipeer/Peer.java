package org.poststelle.oscipeer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import de.osci.osci12.OSCIException;
import de.osci.osci12.common.Constants;
import de.osci.osci12.common.DialogHandler;
import de.osci.osci12.messageparts.Attachment;
import de.osci.osci12.messageparts.Content;
import de.osci.osci12.messageparts.ContentContainer;
import de.osci.osci12.messageparts.EncryptedDataOSCI;
import de.osci.osci12.messageparts.Inspection;
import de.osci.osci12.messageparts.OSCISignature;
import de.osci.osci12.messageparts.ProcessCardBundle;
import de.osci.osci12.messageparts.Timestamp;
import de.osci.osci12.messagetypes.ExitDialog;
import de.osci.osci12.messagetypes.FetchDelivery;
import de.osci.osci12.messagetypes.FetchProcessCard;
import de.osci.osci12.messagetypes.ForwardDelivery;
import de.osci.osci12.messagetypes.GetMessageId;
import de.osci.osci12.messagetypes.InitDialog;
import de.osci.osci12.messagetypes.OSCIMessage;
import de.osci.osci12.messagetypes.OSCIResponseTo;
import de.osci.osci12.messagetypes.ResponseToFetchDelivery;
import de.osci.osci12.messagetypes.ResponseToFetchProcessCard;
import de.osci.osci12.messagetypes.ResponseToForwardDelivery;
import de.osci.osci12.messagetypes.ResponseToGetMessageId;
import de.osci.osci12.messagetypes.ResponseToInitDialog;
import de.osci.osci12.messagetypes.ResponseToStoreDelivery;
import de.osci.osci12.messagetypes.StoreDelivery;
import de.osci.osci12.roles.Addressee;
import de.osci.osci12.roles.Intermed;
import de.osci.osci12.roles.Originator;
import de.osci.osci12.roles.Reader;
import de.osci.osci12.roles.Role;

/**
 * Peer drives the Governikus OSCI-Bibliothek as sender or recipient for Poststelle's interop tests.
 * Every run writes one JSON document (--out, else stdout) saying what the library sent, what it got
 * back and, for a recipient, what it decrypted and which signatures held. See ../README.md.
 */
public final class Peer {
  /** Exit status when the library sent its request but refused or could not read the answer. */
  static final int EXIT_ANSWER = 3;
  static final int EXIT_USAGE = 2;

  private final Options opt;
  private final UrlTransport transport;
  private final Map<String, Object> result = new LinkedHashMap<>();

  private Peer(Options opt) {
    this.opt = opt;
    this.transport = new UrlTransport(opt.intValue("timeout-ms", 60000));
  }

  public static void main(String[] args) {
    Options opt;
    try {
      opt = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("oscipeer: " + e.getMessage());
      System.err.println(Options.USAGE);
      System.exit(EXIT_USAGE);
      return;
    }
    System.exit(new Peer(opt).run());
  }

  private int run() {
    result.put("mode", opt.mode);
    int status = 0;
    try {
      switch (opt.mode) {
        case "store": store(); break;
        case "forward": forward(); break;
        case "fetch": fetch(); break;
        case "processcard": processCard(); break;
        case "passive": return PassiveListener.run(opt, this::keys);
        case "decrypt-bench": return DecryptBench.run(opt, this::keys);
        default: throw new IllegalArgumentException("unknown mode " + opt.mode);
      }
    } catch (IllegalArgumentException e) {
      System.err.println("oscipeer: " + e.getMessage());
      return EXIT_USAGE;
    } catch (Exception e) {
      result.put("error", describe(e));
      status = transport.requests[0] > 0 ? EXIT_ANSWER : 1;
    }
    result.put("requestsSent", transport.requests[0]);
    try {
      emit(opt.value("out", null), result);
    } catch (IOException e) {
      System.err.println("oscipeer: writing the result: " + e);
      return 1;
    }
    return status;
  }

  // ---- roles and keys

  /** Keys resolves the sample key and certificate files named on the command line. */
  final class Keys {
    final Path dir = Paths.get(opt.value("certs", System.getenv().getOrDefault("OSCI_CERT_DIR", ".")));
    final String password = opt.value("password", "123456");

    KeyFile p12(String name) throws IOException, GeneralSecurityException {
      return KeyFile.load(dir.resolve(name), password);
    }

    X509Certificate cert(String name) throws IOException, GeneralSecurityException {
      try (InputStream in = Files.newInputStream(dir.resolve(name))) {
        return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
      }
    }

    FileSigner signer(String dflt) throws IOException, GeneralSecurityException {
      KeyFile k = p12(opt.value("signer", dflt));
      return new FileSigner(k, signatureAlgorithm(k));
    }

    FileDecrypter decrypter(String dflt) throws IOException, GeneralSecurityException {
      return new FileDecrypter(p12(opt.value("decrypter", dflt)));
    }

    String signatureAlgorithm(KeyFile k) {
      boolean ec = "EC".equals(k.key.getAlgorithm());
      String name = opt.value("sig-alg", ec ? "ecdsa-sha256" : "rsa-sha256");
      String uri = Algorithms.signature(name);
      if (ec != uri.contains("ecdsa")) {
        throw new IllegalArgumentException("--sig-alg " + name + " does not fit the " + k.key.getAlgorithm() + " key of " + k.path);
      }
      return uri;
    }
  }

  Keys keys() {
    return new Keys();
  }

  private DialogHandler dialog(Originator me) throws Exception {
    Keys k = keys();
    X509Certificate cipher = k.cert(opt.value("intermediary-cipher", "osci_manager_cipher_4096.cer"));
    Intermed im = new Intermed(null, cipher, new URI(opt.require("intermediary")));
    DialogHandler dh = new DialogHandler(me, im, transport);
    if (opt.flag("no-transport-encryption")) dh.setEncryption(false);
    if (opt.flag("no-signatures")) dh.setCreateSignatures(false);
    if (opt.has("transport-alg")) dh.setSymmetricCipherAlgorithm(Algorithms.symmetric(opt.value("transport-alg", null)));
    String sig = me.getSigner().getAlgorithm();
    DialogHandler.setSignatureAlgorithm(sig);
    result.put("signatureAlgorithm", sig);
    result.put("signer", certInfo(me.getSignatureCertificate()));
    return dh;
  }

  /**
   * resumeDialog puts the handler into an explicit dialog the intermediary opened earlier
   * (--dialog CONVERSATION,SEQUENCE,CHALLENGE), so a capture can record a mid-dialog request
   * without a real InitDialog answer. SEQUENCE is the number the next request carries.
   */
  private boolean resumeDialog(DialogHandler dh) {
    if (!opt.has("dialog")) return false;
    String[] p = opt.value("dialog", null).split(",", 3);
    if (p.length != 3) throw new IllegalArgumentException("--dialog wants CONVERSATION,SEQUENCE,CHALLENGE");
    dh.getControlblock().setConversationID(p[0]);
    dh.getControlblock().setSequenceNumber(Integer.parseInt(p[1]) - 1);
    dh.prevChallenge = p[2];
    dh.explicitDialog = true;
    result.put("dialog", Map.of("conversationId", p[0], "sequence", Integer.parseInt(p[1]), "response", p[2]));
    return true;
  }

  private void openDialog(DialogHandler dh) throws Exception {
    if (resumeDialog(dh)) return;
    ResponseToInitDialog r = new InitDialog(dh).send();
    result.put("initDialog", Map.of("feedback", feedback(r), "conversationId", String.valueOf(dh.getControlblock().getConversationID())));
    requireOK("initDialog", r);
  }

  private void closeDialog(DialogHandler dh) throws Exception {
    if (opt.flag("keep-dialog")) return;
    result.put("exitDialog", Map.of("feedback", feedback(new ExitDialog(dh).send())));
  }

  private String messageId(DialogHandler dh) throws Exception {
    if (opt.has("message-id")) return opt.value("message-id", null);
    ResponseToGetMessageId r = new GetMessageId(dh).send();
    result.put("getMessageId", Map.of("feedback", feedback(r)));
    requireOK("getMessageId", r);
    return r.getMessageId();
  }

  // ---- sender

  private void store() throws Exception {
    Keys k = keys();
    Originator me = new Originator(k.signer("alice_signature_4096.p12"), k.decrypter("carol_cipher_4096.p12"));
    DialogHandler dh = dialog(me);
    String id = messageId(dh);
    Addressee to = new Addressee(null, k.cert(opt.value("addressee", "bob_cipher_4096.cer")));
    StoreDelivery sd = new StoreDelivery(dh, to, id);
    sd.setSubject(opt.value("subject", "Poststelle interop"));
    sd.setQualityOfTimeStampCreation(false);
    sd.setQualityOfTimeStampReception(false);
    addContent(me, to, sd::addContentContainer, sd::addEncryptedData);
    result.put("messageId", id);
    ResponseToStoreDelivery r;
    try (Stores s = stores()) {
      r = sd.send(s.out, s.in);
    }
    result.put("feedback", feedback(r));
    result.put("processCard", processCard(r.getProcessCardBundle()));
  }

  private void forward() throws Exception {
    Keys k = keys();
    Originator me = new Originator(k.signer("alice_signature_4096.p12"), k.decrypter("carol_cipher_4096.p12"));
    DialogHandler dh = dialog(me);
    String id = messageId(dh);
    Addressee to = new Addressee(null, k.cert(opt.value("addressee", "bob_cipher_4096.cer")));
    ForwardDelivery fd = new ForwardDelivery(dh, to, opt.require("recipient-url"), id);
    fd.setSubject(opt.value("subject", "Poststelle interop"));
    fd.setQualityOfTimeStampCreation(false);
    fd.setQualityOfTimeStampReception(false);
    addContent(me, to, fd::addContentContainer, fd::addEncryptedData);
    result.put("messageId", id);
    ResponseToForwardDelivery r;
    try (Stores s = stores()) {
      r = fd.send(s.out, s.in);
    }
    result.put("feedback", feedback(r));
    result.put("processCard", processCard(r.getProcessCardBundle()));
  }

  interface Adder<T> {
    void add(T t) throws Exception;
  }

  /**
   * addContent builds one content container (text plus the --attach attachments), signs it as the
   * originator unless --unsigned-content, and adds it encrypted for the addressee unless
   * --plain-content.
   */
  private void addContent(Originator me, Addressee to, Adder<ContentContainer> plain, Adder<EncryptedDataOSCI> enc)
      throws Exception {
    boolean encrypt = !opt.flag("plain-content");
    String alg = Algorithms.symmetric(opt.value("enc-alg", "aes256-gcm"));
    ContentContainer cc = new ContentContainer();
    if (opt.has("container")) cc.setRefID(opt.value("container", null));
    // An EGVP message carries only named files; the text content is the default otherwise.
    if (opt.has("content") || opt.values("inline").isEmpty()) {
      cc.addContent(new Content(opt.value("content", "Poststelle interop content.")));
    }
    for (String spec : opt.values("inline")) {
      String[] nf = nameAndFile(spec, "--inline");
      Content c = new Content(Files.readString(Paths.get(nf[1]), StandardCharsets.UTF_8));
      c.setRefID(nf[0]);
      cc.addContent(c);
    }
    List<Object> sent = new ArrayList<>();
    for (String spec : opt.values("attach-file")) {
      String[] nf = nameAndFile(spec, "--attach-file");
      byte[] data = Files.readAllBytes(Paths.get(nf[1]));
      InputStream in = new java.io.ByteArrayInputStream(data);
      Content c = new Content(encrypt ? new Attachment(in, nf[0], alg) : new Attachment(in, nf[0]));
      c.setRefID(nf[0]);
      cc.addContent(c);
      sent.add(Map.of("refId", nf[0], "length", data.length, "sha256", hex(MessageDigest.getInstance("SHA-256").digest(data))));
    }
    List<String> sizes = opt.values("attach");
    for (int i = 0; i < sizes.size(); i++) {
      long n = Long.parseLong(sizes.get(i));
      String ref = "attachment-" + (i + 1);
      InputStream data = new PatternStream(n, i);
      cc.addContent(new Content(encrypt ? new Attachment(data, ref, alg) : new Attachment(data, ref)));
      sent.add(Map.of("refId", ref, "length", n, "sha256", hex(PatternStream.sha256(n, i))));
    }
    if (!opt.flag("unsigned-content")) cc.sign(me);
    result.put("sentAttachments", sent);
    result.put("contentEncryption", encrypt ? alg : null);
    if (!encrypt) {
      plain.add(cc);
      return;
    }
    EncryptedDataOSCI ed = new EncryptedDataOSCI(alg, cc);
    ed.encrypt(to);
    enc.add(ed);
  }

  /** nameAndFile splits a NAME=FILE option value: the file's name in the message, and its path. */
  private static String[] nameAndFile(String spec, String option) {
    int eq = spec.indexOf('=');
    if (eq <= 0 || eq == spec.length() - 1) throw new IllegalArgumentException(option + " wants NAME=FILE, got " + spec);
    return new String[] {spec.substring(0, eq), spec.substring(eq + 1)};
  }

  // ---- recipient

  private void fetch() throws Exception {
    Keys k = keys();
    FileDecrypter own = k.decrypter("bob_cipher_4096.p12");
    Originator me = new Originator(k.signer("bob_signature_4096.p12"), own);
    DialogHandler dh = dialog(me);
    openDialog(dh);
    FetchDelivery fd = new FetchDelivery(dh);
    if (opt.has("message-id")) {
      fd.setSelectionMode(OSCIMessage.SELECT_BY_MESSAGE_ID);
      fd.setSelectionRule(opt.value("message-id", null));
    }
    ResponseToFetchDelivery r;
    try (Stores s = stores()) {
      r = fd.send(s.out, s.in);
    }
    result.put("feedback", feedback(r));
    requireOK("fetchDelivery", r);
    Reader reader = new Reader(opt.has("reader") ? new FileDecrypter(k.p12(opt.value("reader", null))) : own);
    result.putAll(Delivery.describe(r.getMessageId(), r.getSubject(), r.getContentContainer(), r.getEncryptedData(),
        reader, outDir()));
    // The sender's OSCI signature certificate: its transport signature (an EGVP VHN).
    result.put("originator", r.getOriginator() == null ? null : roleCert(r.getOriginator()));
    result.put("processCard", processCard(r.getProcessCardBundle()));
    closeDialog(dh);
  }

  private void processCard() throws Exception {
    Keys k = keys();
    Originator me = new Originator(k.signer("alice_signature_4096.p12"), k.decrypter("carol_cipher_4096.p12"));
    DialogHandler dh = dialog(me);
    openDialog(dh);
    FetchProcessCard fp = new FetchProcessCard(dh);
    if (opt.has("message-id")) {
      fp.setSelectionMode(OSCIMessage.SELECT_BY_MESSAGE_ID);
      fp.setSelectionRule(opt.value("message-id", null));
    }
    ResponseToFetchProcessCard r;
    try (Stores s = stores()) {
      r = fp.send(s.out, s.in);
    }
    result.put("feedback", feedback(r));
    List<Object> cards = new ArrayList<>();
    ProcessCardBundle[] b = r.getProcessCardBundles();
    if (b != null) for (ProcessCardBundle p : b) cards.add(processCard(p));
    result.put("processCards", cards);
    closeDialog(dh);
  }

  private Path outDir() throws IOException {
    if (!opt.has("out-dir")) return null;
    Path d = Paths.get(opt.value("out-dir", null));
    Files.createDirectories(d);
    return d;
  }

  // ---- JSON pieces

  static List<Object> feedback(OSCIResponseTo r) {
    List<Object> out = new ArrayList<>();
    String[][] f = r.getFeedback();
    if (f == null) return out;
    for (String[] e : f) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("language", e[0]);
      m.put("code", e[1]);
      m.put("text", e[2]);
      out.add(m);
    }
    return out;
  }

  private static void requireOK(String what, OSCIResponseTo r) throws FeedbackException {
    String[][] f = r.getFeedback();
    String code = f == null || f.length == 0 ? null : f[0][1];
    if (code == null || !code.startsWith("0")) throw new FeedbackException(what, code);
  }

  /** FeedbackException is an answer whose first feedback entry is not a success (0xxx) code. */
  static final class FeedbackException extends Exception {
    final String code;

    FeedbackException(String what, String code) {
      super(what + ": intermediary feedback " + (code == null ? "missing" : code));
      this.code = code;
    }
  }

  static Map<String, Object> processCard(ProcessCardBundle p) {
    if (p == null) return null;
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("messageId", p.getMessageId());
    m.put("recentModification", p.getRecentModification());
    m.put("subject", p.getSubject());
    m.put("creation", timestamp(p.getCreation()));
    m.put("forwarding", timestamp(p.getForwarding()));
    m.put("reception", timestamp(p.getReception()));
    List<Object> ins = new ArrayList<>();
    if (p.getInspections() != null) {
      for (Inspection i : p.getInspections()) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("subject", i.getX509SubjectName());
        e.put("issuer", i.getX509IssuerName());
        e.put("serial", i.getX509SerialNumber());
        e.put("certType", i.getCertType());
        e.put("mathResult", i.getMathResult());
        e.put("offlineResult", i.getOfflineResult());
        e.put("onlineChecked", i.isOnlineChecked());
        e.put("onlineResult", i.isOnlineChecked() ? i.getOnlineResult() : null);
        e.put("timestamp", timestamp(i.getTimeStamp()));
        ins.add(e);
      }
    }
    m.put("inspections", ins);
    return m;
  }

  static Map<String, Object> timestamp(Timestamp t) {
    if (t == null) return null;
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("algorithm", t.getAlgorithm());
    m.put("time", t.getTimeStamp());
    return m;
  }

  static Map<String, Object> certInfo(X509Certificate c) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("subject", c.getSubjectX500Principal().getName());
    m.put("issuer", c.getIssuerX500Principal().getName());
    m.put("serial", c.getSerialNumber().toString(16));
    try {
      m.put("sha256", hex(MessageDigest.getInstance("SHA-256").digest(c.getEncoded())));
    } catch (GeneralSecurityException e) {
      m.put("sha256", null);
    }
    return m;
  }

  static Map<String, Object> describe(Throwable e) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("type", e.getClass().getName());
    if (e instanceof OSCIException) m.put("code", ((OSCIException) e).getErrorCode());
    if (e instanceof FeedbackException) m.put("code", ((FeedbackException) e).code);
    m.put("message", String.valueOf(e.getMessage()));
    Throwable c = e.getCause();
    if (c != null) m.put("cause", c.getClass().getName() + ": " + c.getMessage());
    StringWriter w = new StringWriter();
    e.printStackTrace(new PrintWriter(w));
    System.err.print(w);
    return m;
  }

  static String hex(byte[] b) {
    return HexFormat.of().formatHex(b);
  }

  static void emit(String path, Object doc) throws IOException {
    String s = Json.write(doc);
    if (path == null) {
      System.out.print(s);
      System.out.flush();
    } else {
      Files.writeString(Paths.get(path), s, StandardCharsets.UTF_8);
    }
  }

  /** Stores holds the files the library copies the plaintext request and answer into (--store-out, --store-in). */
  private Stores stores() throws IOException {
    return new Stores(opt.value("store-out", null), opt.value("store-in", null));
  }

  static final class Stores implements AutoCloseable {
    final OutputStream out;
    final OutputStream in;

    Stores(String out, String in) throws IOException {
      this.out = out == null ? null : Files.newOutputStream(Paths.get(out));
      this.in = in == null ? null : Files.newOutputStream(Paths.get(in));
    }

    @Override
    public void close() throws IOException {
      // The library closes them itself after use; closing twice is harmless.
      if (out != null) out.close();
      if (in != null) in.close();
    }
  }

  /** Algorithms maps the command line's short names to the library's algorithm URIs. */
  static final class Algorithms {
    private Algorithms() {}

    static String signature(String name) {
      switch (name) {
        case "rsa-sha256": return Constants.SIGNATURE_ALGORITHM_RSA_SHA256;
        case "rsa-sha512": return Constants.SIGNATURE_ALGORITHM_RSA_SHA512;
        case "rsa-pss": case "rsa-pss-sha256": return Constants.SIGNATURE_ALGORITHM_RSA_SHA256_PSS;
        case "rsa-pss-sha512": return Constants.SIGNATURE_ALGORITHM_RSA_SHA512_PSS;
        case "ecdsa-sha256": return Constants.SIGNATURE_ALGORITHM_ECDSA_SHA256;
        case "ecdsa-sha512": return Constants.SIGNATURE_ALGORITHM_ECDSA_SHA512;
        default: throw new IllegalArgumentException("unknown signature algorithm " + name);
      }
    }

    static String symmetric(String name) {
      switch (name) {
        case "aes256-gcm": return Constants.SYMMETRIC_CIPHER_ALGORITHM_AES256_GCM;
        case "aes192-gcm": return Constants.SYMMETRIC_CIPHER_ALGORITHM_AES192_GCM;
        case "aes128-gcm": return Constants.SYMMETRIC_CIPHER_ALGORITHM_AES128_GCM;
        case "aes256-cbc": return Constants.SYMMETRIC_CIPHER_ALGORITHM_AES256;
        case "aes192-cbc": return Constants.SYMMETRIC_CIPHER_ALGORITHM_AES192;
        case "aes128-cbc": return Constants.SYMMETRIC_CIPHER_ALGORITHM_AES128;
        case "tdes-cbc": return Constants.SYMMETRIC_CIPHER_ALGORITHM_TDES_CBC;
        default: throw new IllegalArgumentException("unknown content encryption algorithm " + name);
      }
    }
  }

  /** roleName names a role's certificate for the JSON, or says why it cannot. */
  static Object roleCert(Role r) {
    try {
      return r.hasSignatureCertificate() ? certInfo(r.getSignatureCertificate()) : null;
    } catch (Exception e) {
      return "unavailable: " + e.getMessage();
    }
  }

  static List<Object> signatures(ContentContainer cc) {
    List<Object> out = new ArrayList<>();
    OSCISignature[] sigs = cc.getSignatures();
    if (sigs == null) return out;
    for (OSCISignature s : sigs) {
      Map<String, Object> m = new LinkedHashMap<>();
      Role signer = s.getSigner();
      m.put("algorithm", s.signatureAlgorithm);
      m.put("signingTime", s.getSigningTime());
      m.put("digestMethods", new ArrayList<Object>(new java.util.TreeSet<>(s.getDigestMethods().values())));
      m.put("signer", signer == null ? null : roleCert(signer));
      try {
        m.put("valid", signer != null && cc.checkSignature(signer));
      } catch (Exception e) {
        m.put("valid", false);
        m.put("error", e.getClass().getName() + ": " + e.getMessage());
      }
      out.add(m);
    }
    return out;
  }
}
