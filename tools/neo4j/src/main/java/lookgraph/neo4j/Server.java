package lookgraph.neo4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;
import org.neo4j.server.configuration.ServerSettings;

/**
 * Neo4j Community serving Bolt on 127.0.0.1:PORT and HTTP (the Neo4j Browser, at /browser/) on
 * 127.0.0.1:HTTP_PORT, with its files under HOME (data/, logs/), until it is sent SIGTERM.
 * Everything is Neo4j's own code: this class only sets the configuration.
 *
 * Usage: Server HOME PORT [PAGECACHE_MB [HTTP_PORT [BROWSER_COMMAND]]]. HTTP_PORT 0 leaves HTTP
 * off. BROWSER_COMMAND runs in the Browser once it connects (lookgraph's style). Authentication
 * is off: the server listens on loopback only, for development and tests (production uses the
 * docker-compose.yml server with a password).
 */
public final class Server {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Server HOME PORT [PAGECACHE_MB [HTTP_PORT [BROWSER_COMMAND]]]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        long pageCacheMb = args.length > 2 ? Long.parseLong(args[2]) : 512;
        int httpPort = args.length > 3 ? Integer.parseInt(args[3]) : 0;
        String browserCommand = args.length > 4 ? args[4] : "";
        Files.createDirectories(home);

        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(home);
        String plugins = System.getProperty("lookgraph.plugins", "");
        if (!plugins.isEmpty()) {
            // Graph Data Science, assembled from its Maven Central modules by scripts/neo4j.sh.
            builder.setConfig(GraphDatabaseSettings.plugin_dir, Path.of(plugins).toAbsolutePath())
                    .setConfig(GraphDatabaseSettings.procedure_unrestricted, List.of("gds.*"));
        }
        DatabaseManagementService dbms = builder
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                // The Browser offers the advertised Bolt address to connect to: this port, not 7687.
                .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                .setConfig(HttpConnector.enabled, httpPort > 0)
                .setConfig(HttpConnector.listen_address, new SocketAddress("127.0.0.1", Math.max(httpPort, 1)))
                .setConfig(HttpConnector.advertised_address, new SocketAddress("127.0.0.1", Math.max(httpPort, 1)))
                .setConfig(ServerSettings.browser_post_connect_cmd, browserCommand)
                // The style is served by this server, on loopback: the Browser may fetch it.
                .setConfig(ServerSettings.browser_remote_content_hostname_whitelist, "127.0.0.1,localhost,guides.neo4j.com")
                .setConfig(GraphDatabaseSettings.auth_enabled, false)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb))
                .build();
        // Block until the default database is up, so "ready" means queries will run.
        dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME).executeTransactionally("RETURN 1");

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown(); // flushes and closes the store files: a clean stop on SIGTERM
            stopped.countDown();
        }));
        System.out.println("lookgraph-neo4j ready: bolt://127.0.0.1:" + port
                + (httpPort > 0 ? " browser http://127.0.0.1:" + httpPort + "/browser/" : "") + " home " + home);
        System.out.flush();
        stopped.await();
    }
}
