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

/**
 * Neo4j Community serving Bolt on 127.0.0.1:PORT with its files under HOME (data/, logs/), until
 * it is sent SIGTERM. Everything is Neo4j's own code: this class only sets the configuration.
 *
 * Usage: Server HOME PORT [PAGECACHE_MB]. Authentication is off: the server listens on loopback
 * only, for development and tests (production uses the docker-compose.yml server with a password).
 */
public final class Server {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Server HOME PORT [PAGECACHE_MB]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        long pageCacheMb = args.length > 2 ? Long.parseLong(args[2]) : 512;
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
                .setConfig(HttpConnector.enabled, false)
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
        System.out.println("lookgraph-neo4j ready: bolt://127.0.0.1:" + port + " home " + home);
        System.out.flush();
        stopped.await();
    }
}
