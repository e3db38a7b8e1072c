import Live
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads a TLS certificate on every SIGHUP (as nginx does), so that a renewed
/// certificate is taken without a restart and without dropping a session. A failed reload
/// is logged with its reason and the certificate in use stays.
public struct CertificateReloader: Service {
    let certificate: TLSCertificate
    let logger: Logger

    public init(certificate: TLSCertificate, logger: Logger) {
        self.certificate = certificate
        self.logger = logger
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            do {
                try certificate.reload()
                logger.info("TLS certificate reloaded", metadata: ["file": "\(certificate.certificateFile)"])
            } catch {
                logger.error("TLS certificate reload failed; the previous one stays in use",
                             metadata: ["reason": "\(error)"])
            }
        }
    }
}
