/*
 * A real HDFS (MiniDFSCluster: one namenode, one datanode) and, when asked, a real YARN
 * (MiniYARNCluster: one ResourceManager, one NodeManager) on 127.0.0.1, for the product's tests.
 *
 * Runs in its own JVM with the hadoop-client-minicluster jars only (tests/hadoop.py compiles and
 * starts it). When both are up it writes core-site.xml, hdfs-site.xml and yarn-site.xml into the
 * configuration folder (a HADOOP_CONF_DIR for spark-submit) and then a file named "ready"; it
 * runs until its process is ended.
 *
 *   java -cp <jars>:<classes> MiniClusters <base dir> <conf dir> <namenode port> [yarn]
 */
import java.io.File;
import java.io.FileOutputStream;
import java.io.OutputStream;
import java.nio.file.Files;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;

public final class MiniClusters {
    private static final String[] CLIENT_KEYS = {
        "fs.defaultFS",
        YarnConfiguration.RM_ADDRESS,
        YarnConfiguration.RM_SCHEDULER_ADDRESS,
        YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS,
        YarnConfiguration.RM_ADMIN_ADDRESS,
        YarnConfiguration.RM_WEBAPP_ADDRESS,
        YarnConfiguration.RM_HOSTNAME,
    };

    private MiniClusters() {
    }

    public static void main(String[] args) throws Exception {
        File base = new File(args[0]);
        File confDir = new File(args[1]);
        int namenodePort = Integer.parseInt(args[2]);
        boolean withYarn = args.length > 3 && "yarn".equals(args[3]);

        Configuration conf = new YarnConfiguration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, new File(base, "dfs").getAbsolutePath());
        conf.set("dfs.namenode.rpc-address", "127.0.0.1:" + namenodePort);
        conf.set("dfs.datanode.hostname", "127.0.0.1");
        conf.setBoolean("dfs.permissions.enabled", false);
        MiniDFSCluster dfs = new MiniDFSCluster.Builder(conf)
                .nameNodePort(namenodePort).numDataNodes(1).format(true).build();
        dfs.waitActive();
        conf.set("fs.defaultFS", dfs.getFileSystem().getUri().toString());

        if (withYarn) {
            conf.set(YarnConfiguration.RM_HOSTNAME, "127.0.0.1");
            conf.set(YarnConfiguration.RM_SCHEDULER,
                     "org.apache.hadoop.yarn.server.resourcemanager.scheduler.fifo.FifoScheduler");
            conf.set(YarnConfiguration.NM_ADDRESS, "127.0.0.1:0");
            conf.setInt(YarnConfiguration.NM_PMEM_MB, 8192);
            conf.setInt(YarnConfiguration.NM_VCORES, 4);
            conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 256);
            conf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB, 4096);
            conf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, false);
            conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
            conf.set("yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage", "99.5");
            MiniYARNCluster yarn = new MiniYARNCluster("prospects", 1, 1, 1);
            yarn.init(conf);
            yarn.start();
            conf = new Configuration(yarn.getConfig());
            conf.set("fs.defaultFS", dfs.getFileSystem().getUri().toString());
        }

        // a client's configuration only: the clusters' own (test) settings would name classes that
        // a Spark application's classpath does not have
        Configuration client = new Configuration(false);
        client.set("dfs.replication", "1");
        for (String key : CLIENT_KEYS) {
            if (conf.get(key) != null) {
                client.set(key, conf.get(key));
            }
        }
        confDir.mkdirs();
        for (String name : new String[] {"core-site.xml", "hdfs-site.xml", "yarn-site.xml"}) {
            try (OutputStream out = new FileOutputStream(new File(confDir, name))) {
                client.writeXml(out);
            }
        }
        Files.writeString(new File(confDir, "ready").toPath(), dfs.getFileSystem().getUri().toString() + "\n");
        Thread.currentThread().join();
    }
}
