// Fabric's asset-transfer-basic application flow (application-gateway-typescript), run through the
// official @hyperledger/fabric-gateway client against a heddle network (`heddle up` layout).
//
// Configuration (env, or --name=value arguments with the same names in lower case, e.g.
// --crypto_path=...): DATA (default $HEDDLE_DATA or ./data), CRYPTO_PATH (an org folder under DATA/organizations/peerOrganizations),
// KEY_DIRECTORY_PATH, CERT_DIRECTORY_PATH, TLS_CERT_PATH, PEER_ENDPOINT, PEER_HOST_ALIAS,
// MSP_ID, CHANNEL_NAME, CHAINCODE_NAME, EXPECT_UPDATE_ERROR.
//
// Prints one JSON object per line ({"step": ..., ...}); exits 1 on any unexpected outcome.

import * as grpc from '@grpc/grpc-js';
import { connect, hash, signers } from '@hyperledger/fabric-gateway';
import * as crypto from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { TextDecoder } from 'node:util';

const args = Object.fromEntries(
    process.argv
        .slice(2)
        .filter((a) => a.startsWith('--') && a.includes('='))
        .map((a) => {
            const i = a.indexOf('=');
            return [a.slice(2, i).toUpperCase(), a.slice(i + 1)];
        }),
);
const setting = (name, fallback) => args[name] ?? process.env[name] ?? fallback;

const channelName = setting('CHANNEL_NAME', 'mychannel');
const chaincodeName = setting('CHAINCODE_NAME', 'basic');
const mspId = setting('MSP_ID', 'Org1MSP');
const cryptoPath = setting(
    'CRYPTO_PATH',
    path.resolve(setting('DATA', process.env.HEDDLE_DATA ?? 'data'), 'organizations', 'peerOrganizations', 'org1.example.com'),
);
const keyDirectoryPath = setting('KEY_DIRECTORY_PATH', path.resolve(cryptoPath, 'users', 'User1@org1.example.com', 'msp', 'keystore'));
const certDirectoryPath = setting('CERT_DIRECTORY_PATH', path.resolve(cryptoPath, 'users', 'User1@org1.example.com', 'msp', 'signcerts'));
const tlsCertPath = setting('TLS_CERT_PATH', path.resolve(cryptoPath, 'peers', 'peer0.org1.example.com', 'tls', 'ca.crt'));
const peerEndpoint = setting('PEER_ENDPOINT', 'localhost:7051');
const peerHostAlias = setting('PEER_HOST_ALIAS', 'peer0.org1.example.com');
const expectUpdateError = setting('EXPECT_UPDATE_ERROR', 'does not exist');

const utf8Decoder = new TextDecoder();
const assetId = `asset${String(Date.now())}`;

function emit(obj) {
    console.log(JSON.stringify(obj));
}

class UnexpectedOutcome extends Error {}

async function main() {
    emit({ step: 'config', channelName, chaincodeName, mspId, cryptoPath, peerEndpoint, peerHostAlias });
    const client = await newGrpcConnection();
    const gateway = connect({
        client,
        identity: await newIdentity(),
        signer: await newSigner(),
        hash: hash.sha256,
        evaluateOptions: () => ({ deadline: Date.now() + 5000 }),
        endorseOptions: () => ({ deadline: Date.now() + 15000 }),
        submitOptions: () => ({ deadline: Date.now() + 5000 }),
        commitStatusOptions: () => ({ deadline: Date.now() + 60000 }),
    });
    try {
        const contract = gateway.getNetwork(channelName).getContract(chaincodeName);
        await initLedger(contract);
        await getAllAssets(contract);
        await createAsset(contract);
        await transferAssetAsync(contract);
        await readAssetByID(contract);
        await updateNonExistentAsset(contract);
    } finally {
        gateway.close();
        client.close();
    }
    emit({ step: 'done', ok: true });
}

async function newGrpcConnection() {
    const tlsRootCert = await fs.readFile(tlsCertPath);
    const tlsCredentials = grpc.credentials.createSsl(tlsRootCert);
    return new grpc.Client(peerEndpoint, tlsCredentials, {
        'grpc.ssl_target_name_override': peerHostAlias,
    });
}

async function newIdentity() {
    const certPath = await getFirstDirFileName(certDirectoryPath);
    const credentials = await fs.readFile(certPath);
    return { mspId, credentials };
}

async function getFirstDirFileName(dirPath) {
    const files = await fs.readdir(dirPath);
    const file = files.sort()[0];
    if (!file) {
        throw new Error(`No files in directory: ${dirPath}`);
    }
    return path.join(dirPath, file);
}

async function newSigner() {
    const keyPath = await getFirstDirFileName(keyDirectoryPath);
    const privateKeyPem = await fs.readFile(keyPath);
    const privateKey = crypto.createPrivateKey(privateKeyPem);
    return signers.newPrivateKeySigner(privateKey);
}

async function initLedger(contract) {
    await contract.submitTransaction('InitLedger');
    emit({ step: 'InitLedger', ok: true });
}

async function getAllAssets(contract) {
    const resultBytes = await contract.evaluateTransaction('GetAllAssets');
    const result = JSON.parse(utf8Decoder.decode(resultBytes));
    if (!Array.isArray(result) || result.length === 0) {
        throw new UnexpectedOutcome(`GetAllAssets returned no assets: ${utf8Decoder.decode(resultBytes)}`);
    }
    emit({ step: 'GetAllAssets', ok: true, result });
}

async function createAsset(contract) {
    await contract.submitTransaction('CreateAsset', assetId, 'yellow', '5', 'Tom', '1300');
    emit({ step: 'CreateAsset', ok: true, assetId });
}

async function transferAssetAsync(contract) {
    const commit = await contract.submitAsync('TransferAsset', {
        arguments: [assetId, 'Saptha'],
    });
    const oldOwner = utf8Decoder.decode(commit.getResult());
    const status = await commit.getStatus();
    if (!status.successful) {
        throw new UnexpectedOutcome(
            `Transaction ${status.transactionId} failed to commit with status code ${String(status.code)}`,
        );
    }
    emit({
        step: 'TransferAsset',
        ok: true,
        oldOwner,
        transactionId: status.transactionId,
        blockNumber: String(status.blockNumber),
    });
}

async function readAssetByID(contract) {
    const resultBytes = await contract.evaluateTransaction('ReadAsset', assetId);
    const result = JSON.parse(utf8Decoder.decode(resultBytes));
    if (result.ID !== assetId || result.Owner !== 'Saptha') {
        throw new UnexpectedOutcome(`ReadAsset returned ${JSON.stringify(result)}; expected owner Saptha`);
    }
    emit({ step: 'ReadAsset', ok: true, result });
}

async function updateNonExistentAsset(contract) {
    try {
        await contract.submitTransaction('UpdateAsset', 'asset70', 'blue', '5', 'Tomoko', '300');
    } catch (error) {
        const details = Array.isArray(error?.details) ? error.details : [];
        const visible = details.some((d) => String(d.message).includes(expectUpdateError));
        emit({
            step: 'UpdateAsset',
            ok: visible,
            expectedFailure: true,
            error: {
                name: error?.name,
                code: error?.code,
                message: error?.message,
                transactionId: error?.transactionId,
                details,
            },
        });
        if (!visible) {
            throw new UnexpectedOutcome(
                `UpdateAsset failed, but no error detail mentions ${JSON.stringify(expectUpdateError)}`,
            );
        }
        return;
    }
    throw new UnexpectedOutcome('UpdateAsset of a missing asset succeeded; it must fail');
}

main().catch((error) => {
    emit({
        step: 'failed',
        ok: false,
        error: {
            name: error?.name,
            code: error?.code,
            message: error?.message,
            details: error?.details,
            stack: error?.stack,
        },
    });
    process.exitCode = 1;
});
