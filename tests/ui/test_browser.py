"""The whole route in a real headless Chromium (Selenium + Debian's chromium and chromium-driver) against the
real `lora-scripts ui` process on the demo base model: upload images -> edit a caption -> auto-label ->
doctor -> train a few steps (the loss curve grows) -> stop and resume -> generate with the LoRA at two
weights -> see the images; in English, then a shorter pass in Chinese (Chinese names, captions, errors).

Set LORA_SCRIPTS_UI_SCREENSHOTS=docs/ui to refresh the screenshots the docs show."""

from __future__ import annotations

import base64
import os
import shutil
import zipfile
from pathlib import Path

import pytest

selenium = pytest.importorskip("selenium", reason="the web UI's extra is not installed: pip install -e .[ui]")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow
BROWSER = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
DRIVER = shutil.which("chromedriver")
MISSING = (
    "BROWSER TESTS SKIPPED: no chromium/chromedriver on this machine. "
    "Install them with `apt-get install -y chromium chromium-driver` (.ci/run does)."
)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (each test opens its own UI on its own port: a page of its own
    origin, with its own local storage)."""
    if not (BROWSER and DRIVER):
        pytest.skip(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,950"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


class Page:
    """The page in the browser, with waits (every action the UI takes is asynchronous)."""

    def __init__(self, driver, shots: Path):
        self.d, self.shots = driver, shots

    def el(self, css: str):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def wait(self, condition, timeout: float = 120, what: str = ""):
        def check(_):
            try:
                return condition()
            except Exception:  # noqa: BLE001 - the element is being re-rendered
                return False

        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.3).until(check)
        except Exception as exc:
            log = self.d.execute_script("return document.querySelector('#train-log')?.textContent || ''")
            message = self.el("#message").text
            raise AssertionError(
                f"waited {timeout} s for {what}; message: {message!r}; log: {log[-1500:]}"
            ) from exc

    def tab(self, name: str) -> None:
        self.el(f'.tab[data-tab="{name}"]').click()

    def type(self, css: str, text: str) -> None:
        box = self.el(css)
        box.clear()
        box.send_keys(text)

    def field(self, name: str, value) -> None:
        box = self.el(f"#field-{name}")
        if box.tag_name == "select":
            Select(box).select_by_value(str(value))
        else:
            self.type(f"#field-{name}", str(value))

    def show_progress(self) -> None:
        """Advanced settings folded, the training's progress in view (for the screenshot)."""
        if self.el("#advanced").get_attribute("open") is not None:
            self.el("#advanced summary").click()
        self.d.execute_script("document.querySelector('#train-job').scrollIntoView({block: 'start'})")

    def shot(self, name: str) -> None:
        self.d.save_screenshot(str(self.shots / f"{name}.png"))
        target = os.environ.get("LORA_SCRIPTS_UI_SCREENSHOTS")
        if target:  # 256 colours: a third of the size, the same to the eye
            from PIL import Image

            Path(target).mkdir(parents=True, exist_ok=True)
            with Image.open(self.shots / f"{name}.png") as shot:
                shot.convert("RGB").quantize(256).save(Path(target) / f"{name}.png", optimize=True)

    def dataset_job(self, button: str) -> None:
        self.el(button).click()
        self.wait(
            lambda: self.el("#dataset-status").get_attribute("data-status") in ("done", "failed"), what=button
        )
        assert self.el("#dataset-status").get_attribute("data-status") == "done", self.el(
            "#dataset-status"
        ).text

    def fill_training(self, name: str, steps: int, samples_every: int = 5) -> None:
        """The basic fields a designer types, and the advanced ones that make it tiny (64 px, CPU)."""
        self.el("#train-demo-model").click()
        self.wait(lambda: self.el("#field-base_model").get_attribute("value"), what="the demo model")
        for key, value in {
            "train_data_dir": "",
            "output_name": name,
            "resolution": 64,
            "lora_rank": 4,
        }.items():
            self.field(key, value or self.current_dataset)
        self.field("batch_size", 2)
        self.field("max_train_steps", steps)
        self.field("learning_rate", "0.001")
        self.type("#field-sample_prompts", "neon style, a phone")
        self.el("#advanced summary").click()
        for key, value in {
            "min_bucket_reso": 64,
            "max_bucket_reso": 64,
            "bucket_reso_steps": 64,
            "device": "cpu",
            "num_threads": 1,
            "sample_every_n_steps": samples_every,
            "sample_steps": 3,
            "save_steps": 5,
        }.items():
            self.field(key, value)
        self.field("doctor", "warn")

    def train_status(self) -> tuple[str, int, int]:
        status = self.el("#train-status")
        points = int(self.el("#loss-chart").get_attribute("data-points") or 0)
        return status.get_attribute("data-status"), int(status.get_attribute("data-step") or 0), points

    def generate(self, lora: str, weights: str) -> list[str]:
        self.tab("generate")
        row = f'.lora-pick[data-path="loras/{lora}/{lora}.safetensors"]'
        self.wait(lambda: self.el(row), what="the LoRA in the picker")
        self.el(f"{row} input[type=checkbox]").click()
        for css, value in {
            "#gen-steps": 3,
            "#gen-width": 64,
            "#gen-height": 64,
            "#gen-grid-weights": weights,
        }.items():
            self.type(css, str(value))
        self.type("#gen-prompt", "neon style, a phone")
        before = len(self.all("#gallery figure"))
        self.el("#gen-btn").click()
        self.wait(lambda: len(self.all("#gallery figure")) >= before + 3, what="the generated images")
        self.wait(lambda: all(i.get_attribute("naturalWidth") != "0" for i in self.all("#gallery img")), 30)
        return [f.text for f in self.all("#gallery figcaption")]

    def send_to_batch(self, csv_path: Path) -> None:
        """The generate page's settings to the batch page: a 3-row CSV, a template column it lacks (the
        CLI's sentence next to the form), then the run: its contact sheet and thumbnails."""
        csv_path.write_text("id,colour\nP-1,red\nP-2,blue\nP-3,green\nP-4,<lora:x:1>\n", encoding="utf-8")
        self.el("#gen-to-batch").click()
        self.wait(lambda: "neon_lora" in self.el("#batch-from").text, 20, "the settings on the batch page")
        assert self.el("#batch-prompt").get_attribute("value") == "neon style, a phone"
        self.el("#batch-upload").send_keys(str(csv_path))
        self.wait(lambda: self.el("#batch-items").get_attribute("value") == "items/phones.csv", 20, "the CSV")
        self.type("#batch-prompt", "neon style, a {colour} phone by {brand}")
        self.el("#batch-view").click()
        error = "'brand', which the table does not have"
        self.wait(lambda: error in self.el("#batch-error").text, 20, "the missing column's sentence")
        self.type("#batch-prompt", "neon style, a {colour} phone")
        self.type("#batch-size", "3")
        self.el("#batch-view").click()
        self.wait(lambda: "prompt: neon style, a {colour} phone" in self.el("#batch-yaml").text, 20, "YAML")
        assert self.el("#batch-error").text == ""
        self.el("#batch-start").click()
        self.wait(lambda: len(self.all("#batch-thumbs img")) == 3, 120, "the batch's thumbnails")
        self.wait(lambda: self.el("#batch-status").get_attribute("data-status") == "done", 30, "the batch")
        assert self.el("#batch-sheet").get_attribute("href").endswith("/files/outputs/catalogue/index.html")
        assert "P-4" in self.el("#batch-failed").text  # the row whose value holds a LoRA tag
        self.shot("batch")


def _start(ui_process, root: Path, browser, lang: str) -> Page:
    ui = ui_process(root, lang=lang).wait_ready()
    browser.get(ui.url + "/")
    page = Page(browser, root)
    page.wait(lambda: page.all("#fields-basic .field"), 30, "the form")
    return page


def test_the_whole_route_in_english(tmp_path, style_images, browser, ui_process):
    page = _start(ui_process, tmp_path / "ws", browser, "en")
    assert page.el('.tab[data-tab="dataset"]').text == "1. Images"
    # upload images into a new dataset
    page.type("#new-dataset-name", "neon")
    page.el("#create-dataset").click()
    page.wait(
        lambda: Select(page.el("#dataset-select")).first_selected_option.text == "neon", 20, "the dataset"
    )
    page.current_dataset = "datasets/neon"
    page.el("#upload-input").send_keys("\n".join(str(p) for p in sorted(style_images.glob("*.png"))))
    page.wait(lambda: len(page.all("#thumbs figure")) == 4, 30, "4 thumbnails")
    # edit a caption in place (a row of its own in metadata.csv)
    area = page.el('textarea.caption[data-name="000_phone.png"]')
    area.send_keys("neon style, glowing phone")
    page.el("h1").click()  # leaving the box saves it
    page.wait(lambda: "saved" in page.el('figure[data-name="000_phone.png"] .saved').text, 20, "saved")
    metadata = tmp_path / "ws/datasets/neon/metadata.csv"
    assert '000_phone.png,"neon style, glowing phone"' in metadata.read_text(encoding="utf-8")
    # auto-label the rest from file names, then the doctor
    Select(page.el("#label-backend")).select_by_value("filename")
    page.type("#label-trigger", "neon style")
    page.dataset_job("#label-btn")
    page.wait(
        lambda: page.el('textarea[data-name="002_laptop.png"]').get_attribute("value") == "neon style, laptop"
    )
    assert (
        page.el('textarea[data-name="000_phone.png"]').get_attribute("value") == "neon style, glowing phone"
    )
    page.type("#doctor-resolution", "64")
    page.dataset_job("#doctor-btn")
    page.wait(lambda: page.all('figure[data-name="002_laptop.png"] .flag'), 20, "findings on the thumbnails")
    assert "identical caption" in page.el('figure[data-name="002_laptop.png"] .flags').text
    assert not page.all('figure[data-name="000_phone.png"] .flag')  # its caption is its own now
    page.shot("dataset")
    # train: a field error first, then start
    page.tab("train")
    page.fill_training("neon_lora", 60, samples_every=20)  # samples at 20, 40, 60: seconds less
    page.field("learning_rate", "fast")
    page.el("#check-btn").click()
    error = '.field-error[data-for="learning_rate"]'
    page.wait(lambda: page.el(error).text == "Enter a number, such as 0.0001.", 20, "the field error")
    assert not page.all("#train-job option")  # nothing started
    page.field("learning_rate", "0.001")
    page.el("#check-btn").click()
    page.wait(lambda: 'output_dir: "loras/neon_lora"' in page.el("#yaml-view").text, 20, "the resolved YAML")
    assert page.el(error).text == ""
    page.el("#start-btn").click()
    page.wait(lambda: page.train_status()[2] >= 3, 120, "3 points on the loss curve")
    page.el("#stop-btn").click()
    page.wait(lambda: page.train_status()[0] == "stopped", 60, "the stop")
    stopped_at = page.train_status()[1]
    assert 3 <= stopped_at < 60
    page.el("#resume-btn").click()
    page.wait(lambda: page.train_status()[0] == "done", 180, "the resumed run to finish")
    assert page.train_status()[1:] == (60, 60)  # one curve: steps 1-60 across the stop
    page.wait(lambda: page.all("#train-samples img"), 20, "samples")
    assert "step 60 of 60" in page.el("#train-status").text
    page.show_progress()
    page.shot("train")
    # generate with the LoRA at weights 0 and 1
    captions = page.generate("neon_lora", "0,1")
    assert any(c.startswith("<lora:neon_lora:0> neon style, a phone") for c in captions)
    assert any(c.startswith("<lora:neon_lora:1> neon style, a phone") for c in captions)
    page.shot("generate")
    page.send_to_batch(style_images.parent / "phones.csv")
    page.tab("library")
    page.wait(
        lambda: page.el('.lora-card[data-path="loras/neon_lora/neon_lora.safetensors"]'), 20, "the library"
    )
    assert "sd1" in page.el('.lora-card[data-path="loras/neon_lora/neon_lora.safetensors"]').text
    page.shot("library")
    page.tab("jobs")
    assert len(page.all("#jobs tbody tr")) == 6  # label, doctor, train, resume, generate, batch
    stopped = [str(stopped_at), "60"]  # the stopped run's bar ends where it stopped
    want = [["3", "3"], ["2", "2"], ["60", "60"], stopped, ["4", "4"], ["3", "3"]]  # newest first
    # read in one script: the table is redrawn as it polls, so elements found a moment earlier can be gone
    script = "return [...document.querySelectorAll('#jobs .bar')].map(b => [b.dataset.done, b.dataset.total])"
    page.wait(lambda: page.d.execute_script(script) == want, 30, "every job's bar")
    page.wait(lambda: "3 of 3" in page.el("#jobs tbody tr .bar").text, 20, "the newest job's bar text")
    page.shot("jobs")


def _chinese_zip(style_images: Path) -> Path:
    path = style_images.parent / "素材.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i, image in enumerate(sorted(style_images.glob("*.png"))):
            archive.writestr(
                f"纸箱/手机_{i}.png" if "phone" in image.name else f"纸箱/笔记本_{i}.png", image.read_bytes()
            )
    return path


def test_a_shorter_pass_in_chinese(tmp_path, style_images, browser, ui_process):
    page = _start(ui_process, tmp_path / "ws", browser, "en")
    Select(page.el("#lang")).select_by_value("zh")
    page.wait(lambda: page.el('.tab[data-tab="dataset"]').text == "1. 素材图片", 20, "Chinese words")
    hidden = page.d.execute_script(  # the train tab is not shown yet: its words, read from the page
        "return [document.querySelector('#start-btn').textContent,"
        " document.querySelector('label[for=field-learning_rate]').textContent]"
    )
    assert hidden == ["开始训练", "学习速度（学习率）"]
    page.type("#new-dataset-name", "回收箱")
    page.el("#create-dataset").click()
    page.current_dataset = "datasets/回收箱"
    page.wait(
        lambda: Select(page.el("#dataset-select")).first_selected_option.text == "回收箱", 20, "the dataset"
    )
    page.el("#upload-input").send_keys(str(_chinese_zip(style_images)))
    page.wait(lambda: len(page.all("#thumbs figure")) == 4, 30, "4 thumbnails")
    assert "已添加 4 个文件" in page.el("#message").text
    # drag and drop: a file dropped on the drop zone (a DataTransfer made in the page, as a drag would)
    png = base64.b64encode((style_images / "000_phone.png").read_bytes()).decode()
    page.d.execute_script(
        "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));"
        "const data = new DataTransfer();"
        "data.items.add(new File([bytes], '拖进来的.png', {type: 'image/png'}));"
        "const drop = new DragEvent('drop', {dataTransfer: data, bubbles: true});"
        "document.querySelector('#dropzone').dispatchEvent(drop);",
        png,
    )
    page.wait(lambda: len(page.all("#thumbs figure")) == 5, 30, "the dropped image")
    assert (tmp_path / "ws/datasets/回收箱/拖进来的.png").read_bytes() == (
        style_images / "000_phone.png"
    ).read_bytes()
    Select(page.el("#label-backend")).select_by_value("folder")
    page.dataset_job("#label-btn")
    area = page.el('textarea.caption[data-name="纸箱/手机_0.png"]')
    page.wait(lambda: area.get_attribute("value"), 20, "a caption")
    area.clear()
    area.send_keys("霓虹风格，手机")
    page.el("h1").click()
    page.wait(lambda: page.el('figure[data-name="纸箱/手机_0.png"] .saved').text == "已保存", 20, "saved")
    page.type("#doctor-resolution", "64")
    page.dataset_job("#doctor-btn")
    flags = 'figure[data-name="纸箱/手机_0.png"] .flags'
    page.wait(lambda: "描述是中文" in page.el(flags).text, 20, "the Chinese-caption flag in Chinese")
    flag = page.el(f'{flags} .flag[data-check="Chinese caption"]')
    assert "SD 1.x、2.x 和 SDXL 只看得懂英文" in flag.get_attribute("title")  # the sentence too
    assert "SD 1.x、2.x 和 SDXL 只看得懂英文" in page.el("#findings").text
    page.shot("dataset-zh")
    page.tab("train")
    page.fill_training("纸箱", 6)
    page.field("lora_rank", 0)
    page.el("#start-btn").click()
    page.wait(
        lambda: page.el('.field-error[data-for="lora_rank"]').text == "不能小于 1。", 20, "the field error"
    )
    page.field("lora_rank", 4)
    page.field("output_name", "box_zh")
    page.el("#start-btn").click()
    page.wait(lambda: page.train_status()[0] == "done", 180, "the training")
    page.show_progress()
    assert "第 6 步，共 6 步" in page.el("#train-status").text
    page.shot("train-zh")
    captions = page.generate("box_zh", "0,1")
    assert sum("<lora:box_zh:" in c for c in captions) == 2
    page.shot("generate-zh")
    page.tab("jobs")
    assert "已完成 2 / 2" in page.el("#jobs tbody tr .bar").text  # the newest job: the two images
